#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod key_dir;
mod keys;
#[cfg(feature = "legacy-tls")]
mod legacy_tls;
pub mod load;
mod verifier;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capf_ipmode::{
    Addresses, ConnectionInput, Outcome as Plan, PhoneIpMode, connection_plan, order_socket_addrs,
};
use capf_lsc::der::Decode;
use capf_lsc::x509_cert::Certificate as X509;
use capf_lsc::{KeySpec, certificates_from_pem};
use capf_session::{Certificate, Outcome, PhoneEvent, PhoneSession};
use capf_wire::{AuthResponse, DeviceName, Reason};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info};

pub use key_dir::{KeyDir, LSC_FILE, LSC_KEY_FILE, PENDING_KEY_FILE};
pub use keys::{GenerateKeys, KeyPool, KeySource, PhoneKey, sign_csr_info};

/// The TLS client configuration a phone uses: it accepts a server whose certificate is one of
/// `trust` (DER CAPF certificates) or is signed by one of them and valid now, with no host-name
/// check (spec rule T3), and presents no client certificate (rule T4). For tools that speak
/// CAPF over TLS themselves.
///
/// # Errors
/// [`Error::Der`] for a certificate that does not parse, [`Error::Tls`].
pub fn client_config(trust: &[Vec<u8>]) -> Result<Arc<rustls::ClientConfig>, Error> {
    client_config_with(trust, TlsVersions::default())
}

/// [`client_config`] offering only `versions`.
///
/// # Errors
/// As [`client_config`].
pub fn client_config_with(
    trust: &[Vec<u8>],
    versions: TlsVersions,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    if versions.is_legacy() {
        return Err(Error::LegacyTlsVersions(versions));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut anchors = Vec::new();
    for der in trust {
        let cert = X509::from_der(der).map_err(|source| Error::Der {
            what: "CAPF trust certificate",
            source,
        })?;
        anchors.push((der.clone(), cert));
    }
    Ok(Arc::new(
        verifier::CapfVerifier::new(anchors, &provider)
            .into_config(provider, versions.protocol_versions())?,
    ))
}

/// The TLS versions a phone offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersions {
    /// TLS 1.3 and 1.2, the server choosing (the default).
    #[default]
    Tls13AndTls12,
    /// TLS 1.2 only, as phone firmware without TLS 1.3 offers.
    Tls12Only,
    /// TLS 1.0 only with the AES-CBC-SHA suites, as 7900- and 9900-series phones offer
    /// (through OpenSSL: the `legacy-tls` feature; capfd's legacy listener).
    Tls10Only,
    /// TLS 1.1 only with the AES-CBC-SHA suites (the `legacy-tls` feature).
    Tls11Only,
}

impl TlsVersions {
    /// Whether these are TLS 1.0 or 1.1, which only the `legacy-tls` feature's OpenSSL client
    /// speaks.
    pub fn is_legacy(self) -> bool {
        matches!(self, TlsVersions::Tls10Only | TlsVersions::Tls11Only)
    }

    fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        match self {
            TlsVersions::Tls13AndTls12 => rustls::DEFAULT_VERSIONS,
            TlsVersions::Tls12Only => &TLS12_ONLY,
            // Refused before (client_config_with).
            TlsVersions::Tls10Only | TlsVersions::Tls11Only => rustls::DEFAULT_VERSIONS,
        }
    }
}

/// What went wrong on the phone side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key or certificate did not decode.
    #[error("{what}: {source}")]
    Der {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: capf_lsc::der::Error,
    },
    /// A PEM block did not decode.
    #[error("{what}: {source}")]
    Pem {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: capf_lsc::der::pem::Error,
    },
    /// A PKCS#8 private key could not be read or written.
    #[error("{what}: {source}")]
    Pkcs8 {
        /// Which key step.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: pkcs8::Error,
    },
    /// A public key could not be encoded.
    #[error("{what}: {source}")]
    Spki {
        /// Which key step.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: spki::Error,
    },
    /// capf-lsc refused a key, a signature or a certificate.
    #[error("{what}: {source}")]
    Lsc {
        /// Which step.
        what: &'static str,
        /// What capf-lsc reported.
        #[source]
        source: capf_lsc::Error,
    },
    /// RSA key generation failed.
    #[error("RSA key generation: {0}")]
    Rsa(#[source] rsa::Error),
    /// The operating system's random number generator failed (EC key generation).
    #[error("EC key generation: {0}")]
    Random(#[source] getrandom::Error),
    /// A PEM block of another type than PRIVATE KEY.
    #[error("PEM private key: expected PRIVATE KEY, found {label}")]
    NotAPrivateKey {
        /// The block's label.
        label: String,
    },
    /// A private key of an algorithm a phone does not use.
    #[error("PKCS#8 private key: unsupported algorithm {algorithm}")]
    UnsupportedKeyAlgorithm {
        /// The key's algorithm.
        algorithm: spki::ObjectIdentifier,
    },
    /// An EC private key without a named curve, or on a curve a phone does not use.
    #[error("EC key: missing or unsupported curve")]
    UnsupportedCurve,
    /// A key pool without a key of the spec asked for.
    #[error("key pool: no {spec} key in the pool")]
    NoPooledKey {
        /// The spec asked for.
        spec: KeySpec,
    },
    /// A file of the phone's output directory (its pending key, LSC or LSC key) could not be
    /// read or written.
    #[error("{}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The trust file holds no certificate.
    #[error("CAPF trust: no certificate in the trust file")]
    NoTrustCertificate,
    /// The CAPF name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// CAPF's name resolved to no address.
    #[error("cannot connect to CAPF: {host} resolved to no address")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// The phone's IP settings contradict themselves.
    #[error("cannot connect to CAPF: {0}")]
    IpMode(#[from] capf_ipmode::Error),
    /// The IPv4/IPv6 matrix says this phone cannot reach CAPF.
    #[error("cannot connect to CAPF: {0}")]
    CannotConnect(capf_ipmode::CannotConnect),
    /// A TCP connect or TLS handshake took longer than the connect timeout.
    #[error("{step} timed out")]
    TimedOut {
        /// "TCP connect" or "TLS handshake".
        step: &'static str,
    },
    /// A TCP connect or TLS handshake failed.
    #[error("{step}: {source}")]
    Io {
        /// "TCP connect" or "TLS handshake".
        step: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No address of the plan accepted a TLS connection.
    #[error("no CAPF address answered (tried {tried:?}): {last}")]
    Connect {
        /// The addresses tried, in order.
        tried: Vec<SocketAddr>,
        /// The last error.
        #[source]
        last: Box<Error>,
    },
    /// The TLS client configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// TLS 1.0 or 1.1 asked of rustls, or of a build without the `legacy-tls` feature.
    #[error("{0:?}: TLS 1.0 and 1.1 need the OpenSSL client of the `legacy-tls` feature (Phone)")]
    LegacyTlsVersions(TlsVersions),
    /// OpenSSL refused the legacy TLS client's configuration or connection.
    #[cfg(feature = "legacy-tls")]
    #[error("legacy TLS: {0}")]
    LegacyTls(#[from] openssl::error::ErrorStack),
    /// The session layer refused a call (a bug or a server that broke the protocol).
    #[error(transparent)]
    Session(#[from] capf_session::Error),
    /// A message could not be built.
    #[error(transparent)]
    Wire(#[from] capf_wire::Error),
}

/// How the phone authenticates (the device's CAPF authentication mode).
#[derive(Clone)]
#[non_exhaustive]
pub enum PhoneAuth {
    /// By Null String: an empty PASSWORD, as capfc sends.
    NullString,
    /// By Authentication String: the digits the user types on the phone.
    AuthenticationString(String),
    /// By Existing Certificate: the phone's LSC or MIC, signed with its key (spec 6), and
    /// optionally SUDI data.
    ExistingCertificate(Box<CertificateProof>),
}

/// What a phone authenticating by existing certificate holds.
#[derive(Debug, Clone)]
pub struct CertificateProof {
    /// LSC (1) or MIC (2): the CERTIFICATE element's type byte.
    pub certificate_type: capf_wire::CertificateType,
    /// The certificate, DER.
    pub certificate: Vec<u8>,
    /// Its private key.
    pub key: PhoneKey,
    /// The SUDI certificate (DER) and key, to send SUDI_DATA.
    pub sudi: Option<(Vec<u8>, PhoneKey)>,
}

impl std::fmt::Debug for PhoneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PhoneAuth::NullString => f.write_str("NullString"),
            PhoneAuth::AuthenticationString(_) => f.write_str("AuthenticationString(<redacted>)"),
            PhoneAuth::ExistingCertificate(proof) => f
                .debug_tuple("ExistingCertificate")
                .field(&proof.certificate_type)
                .finish(),
        }
    }
}

/// One phone's CAPF settings.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// The device name (SEP + MAC, or CSF... for Jabber), validated where it was given.
    pub device_name: DeviceName,
    /// CAPF's host name or address.
    pub host: String,
    /// CAPF's port (3804).
    pub port: u16,
    /// The phone's IP mode.
    pub ip_mode: PhoneIpMode,
    /// Which addresses the phone has.
    pub addresses: Addresses,
    /// The CAPF certificates (and any CA above them) the phone trusts, DER.
    pub trust: Vec<Vec<u8>>,
    /// How it authenticates.
    pub auth: PhoneAuth,
    /// Retries after a failed session: 3 by default (the guide: three more times).
    pub retries: u32,
    /// Between retries: 30 s by default.
    pub retry_interval: Duration,
    /// For each TCP connect and TLS handshake.
    pub connect_timeout: Duration,
    /// The TLS versions offered: 1.3 and 1.2 by default.
    pub tls_versions: TlsVersions,
    /// How long key generation takes on top of making the key: zero by default; a simulator
    /// sets minutes to play an old phone generating at low priority (the connection stays
    /// open, REQUEST_IN_PROGRESS already sent).
    pub key_generation_delay: Duration,
    /// The session's settings.
    pub session: capf_session::PhoneConfig,
    /// The LSC the phone holds (sent back in Troubleshoot, deleted by Delete).
    pub lsc: Option<Vec<u8>>,
    /// The MIC, sent in Troubleshoot when there is no LSC.
    pub mic: Option<Vec<u8>>,
    /// The output directory: when set, the key made for a KEY_GEN_REQUEST is kept there as the
    /// pending key (0600) until a certificate for it is stored, a later KEY_GEN_REQUEST for the
    /// same key spec reuses it (an external CA's certificate arrives sessions later, spec
    /// section 16), and a stored LSC is written there with its key ([`KeyDir`]).
    pub key_dir: Option<KeyDir>,
    /// The longest RETRY_DELAY [`Phone::run`] waits out before it connects again (spec section
    /// 16): zero by default, so `run` returns the [`Enrollment`] with
    /// [`Enrollment::retry_after`] set and the caller decides. A longer delay is returned the
    /// same way. The guide's retries ([`PhoneConfig::retries`]) are for communication failures
    /// only, never for RETRY_LATER.
    pub max_retry_wait: Duration,
}

impl PhoneConfig {
    /// A two-stack phone with both address families, trusting `trust_pem` (one or more PEM
    /// certificates: the CAPF certificate, as the phone's trust list carries it).
    ///
    /// # Errors
    /// [`Error::Lsc`] for unreadable PEM, [`Error::NoTrustCertificate`] when it holds no
    /// certificate.
    pub fn new(device_name: DeviceName, host: &str, trust_pem: &[u8]) -> Result<Self, Error> {
        let lsc = |source| Error::Lsc {
            what: "CAPF trust",
            source,
        };
        let certs = certificates_from_pem(trust_pem).map_err(lsc)?;
        let mut trust = Vec::new();
        for cert in certs {
            trust.push(capf_lsc::certificate_to_der(&cert).map_err(lsc)?);
        }
        if trust.is_empty() {
            return Err(Error::NoTrustCertificate);
        }
        Ok(PhoneConfig {
            device_name,
            host: host.to_owned(),
            port: 3804,
            ip_mode: PhoneIpMode::TwoStack,
            addresses: Addresses::Both,
            trust,
            auth: PhoneAuth::NullString,
            retries: 3,
            retry_interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            tls_versions: TlsVersions::default(),
            key_generation_delay: Duration::ZERO,
            session: capf_session::PhoneConfig::default(),
            lsc: None,
            mic: None,
            key_dir: None,
            max_retry_wait: Duration::ZERO,
        })
    }
}

/// What one session, or a run with retries, came to.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// How the last session ended.
    pub outcome: Outcome,
    /// The address it ran over.
    pub server: SocketAddr,
    /// Sessions run (1 + retries used).
    pub sessions: u32,
    /// The key requested, if the server asked for one.
    pub requested: Option<KeySpec>,
    /// The LSC installed in this run, with its key.
    pub installed: Option<(Vec<u8>, PhoneKey)>,
    /// The phone deleted its LSC.
    pub deleted: bool,
    /// The phone sent its certificate for Troubleshoot.
    pub fetched: bool,
    /// RETRY_LATER: the server holds the request with an external CA and told the phone to
    /// connect again after this long (spec section 16).
    pub retry_after: Option<Duration>,
    /// How long the phone waited for its certificate: from sending KEY_GEN_RESPONSE (its
    /// public key) to the certificate's arrival, signing the endpoint CSR in between.
    pub key_to_certificate: Option<Duration>,
}

impl Enrollment {
    /// The END_SESSION REASON received, if the server ended the session.
    pub fn end_reason(&self) -> Option<Reason> {
        match self.outcome {
            Outcome::Ended { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether the session ran its course with an END_SESSION that is not a refusal (7, 9).
    pub fn succeeded(&self) -> bool {
        matches!(self.end_reason(), Some(r) if r == Reason::NO_ACTION || r == Reason::UPDATE_CERTIFICATE)
            && !(self.requested.is_some() && self.installed.is_none())
    }
}

/// A CAPF client: the phone side of the protocol over TLS.
pub struct Phone {
    config: PhoneConfig,
    tls: tokio_rustls::TlsConnector,
    /// The OpenSSL client for TLS 1.0 or 1.1 ([`TlsVersions::is_legacy`]).
    #[cfg(feature = "legacy-tls")]
    legacy_tls: Option<legacy_tls::Connector>,
    keys: Arc<dyn KeySource>,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone")
            .field("config", &self.config)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// A phone with these settings, taking keys from `keys`.
    ///
    /// # Errors
    /// [`Error::Der`] for an unreadable trust certificate, [`Error::Tls`].
    pub fn new(config: PhoneConfig, keys: Arc<dyn KeySource>) -> Result<Self, Error> {
        let versions = config.tls_versions;
        #[cfg(not(feature = "legacy-tls"))]
        if versions.is_legacy() {
            return Err(Error::LegacyTlsVersions(versions));
        }
        #[cfg(feature = "legacy-tls")]
        let legacy_tls = legacy_tls::Connector::new(&config.trust, versions)?;
        // A legacy phone's rustls client goes unused.
        let rustls_versions = if versions.is_legacy() {
            TlsVersions::default()
        } else {
            versions
        };
        let tls = client_config_with(&config.trust, rustls_versions)?;
        Ok(Phone {
            config,
            tls: tokio_rustls::TlsConnector::from(tls),
            #[cfg(feature = "legacy-tls")]
            legacy_tls,
            keys,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PhoneConfig {
        &self.config
    }

    /// The settings, to change between runs (the LSC installed, for example).
    pub fn config_mut(&mut self) -> &mut PhoneConfig {
        &mut self.config
    }

    /// The addresses this phone tries, in order: CAPF's name resolved, ordered by the guide's
    /// IPv4/IPv6 table for the phone's IP mode and addresses.
    ///
    /// # Errors
    /// [`Error::Resolve`], [`Error::NoAddress`], [`Error::IpMode`], [`Error::CannotConnect`].
    pub async fn plan(&self) -> Result<Vec<SocketAddr>, Error> {
        let resolved: Vec<SocketAddr> =
            tokio::net::lookup_host((self.config.host.as_str(), self.config.port))
                .await
                .map_err(|source| Error::Resolve {
                    host: self.config.host.clone(),
                    source,
                })?
                .collect();
        let capf = match (
            resolved.iter().any(SocketAddr::is_ipv4),
            resolved.iter().any(SocketAddr::is_ipv6),
        ) {
            (true, true) => Addresses::Both,
            (true, false) => Addresses::Ipv4,
            (false, true) => Addresses::Ipv6,
            (false, false) => {
                return Err(Error::NoAddress {
                    host: self.config.host.clone(),
                });
            }
        };
        let input = ConnectionInput {
            mode: self.config.ip_mode,
            phone: self.config.addresses,
            capf,
        };
        match connection_plan(input)? {
            Plan::Connect(plan) => Ok(order_socket_addrs(plan, &resolved).collect()),
            Plan::CannotConnect(why) => Err(Error::CannotConnect(why)),
        }
    }

    /// Runs sessions until one ends as the server meant it to (END_SESSION received), retrying
    /// a failed one `retries` times at `retry_interval`. A session the server ends with
    /// RETRY_LATER is run again after its delay when that is at most
    /// [`PhoneConfig::max_retry_wait`]; otherwise its [`Enrollment`] says when to come back.
    ///
    /// # Errors
    /// The last connection error when every attempt failed to connect.
    pub async fn run(&mut self) -> Result<Enrollment, Error> {
        let mut attempt = 0;
        let mut earlier = 0;
        loop {
            attempt += 1;
            let result = self.run_once().await;
            if let Ok(e) = &result
                && let Some(delay) = e.retry_after
                && delay <= self.config.max_retry_wait
            {
                // Not a communication failure: the guide's retry count starts again.
                earlier += attempt;
                attempt = 0;
                info!(device = %self.config.device_name, delay_secs = delay.as_secs(), "told to come back later; waiting");
                tokio::time::sleep(delay).await;
                continue;
            }
            let retry = match &result {
                Ok(e) => !matches!(e.outcome, Outcome::Ended { .. }),
                Err(Error::Connect { .. }) => true,
                Err(_) => false,
            };
            if !retry || attempt > self.config.retries {
                return result.map(|mut e| {
                    e.sessions = earlier + attempt;
                    e
                });
            }
            info!(attempt, "session failed; retrying");
            tokio::time::sleep(self.config.retry_interval).await;
        }
    }

    /// One session: connect per the plan, then run the protocol to its end.
    ///
    /// # Errors
    /// [`Error::Connect`] when no address accepted TLS, or an error of the steps before.
    pub async fn run_once(&mut self) -> Result<Enrollment, Error> {
        let addrs = self.plan().await?;
        let mut last = None;
        for addr in &addrs {
            #[cfg(feature = "legacy-tls")]
            if let Some(legacy) = &self.legacy_tls {
                match legacy.connect(*addr, self.config.connect_timeout).await {
                    Ok(tls) => return self.session(tls, *addr).await,
                    Err(e) => {
                        debug!(%addr, error = %e, "legacy TLS connect failed");
                        last = Some(e);
                        continue;
                    }
                }
            }
            match self.connect(*addr).await {
                Ok(tls) => return self.session(tls, *addr).await,
                Err(e) => {
                    debug!(%addr, error = %e, "connect failed");
                    last = Some(e);
                }
            }
        }
        Err(Error::Connect {
            tried: addrs,
            last: Box::new(last.unwrap_or(Error::NoAddress {
                host: self.config.host.clone(),
            })),
        })
    }

    async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
        let timeout = self.config.connect_timeout;
        let failed = |step| move |source| Error::Io { step, source };
        let tcp = connect_tcp(addr, timeout).await?;
        // The CAPF certificate names no host; the verifier checks none (spec rule T3).
        let name = ServerName::IpAddress(addr.ip().into());
        tokio::time::timeout(timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| Error::TimedOut {
                step: "TLS handshake",
            })?
            .map_err(failed("TLS handshake"))
    }

    async fn session(
        &mut self,
        mut tls: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        server: SocketAddr,
    ) -> Result<Enrollment, Error> {
        let mut session = PhoneSession::new(self.config.session.clone(), Instant::now());
        let mut buf = vec![0u8; 4096];
        let mut requested = None;
        let mut key: Option<PhoneKey> = None;
        let mut installed = None;
        let (mut deleted, mut fetched) = (false, false);
        let mut retry_after = None;
        let (mut key_sent, mut key_to_certificate) = (None, None);
        let outcome = loop {
            while let Some(message) = session.poll_transmit() {
                // One message per TLS write (spec rule T9).
                if tls.write_all(&message).await.is_err() || tls.flush().await.is_err() {
                    session.handle_eof(Instant::now());
                }
            }
            if let Some(event) = session.poll_event() {
                let now = Instant::now();
                match event {
                    PhoneEvent::AuthRequested {
                        version,
                        session_id,
                        ..
                    } => {
                        let response = auth_response(&self.config, version, session_id)?;
                        session.send_auth_response(now, response)?;
                    }
                    PhoneEvent::KeyGenerationRequested { key: request } => {
                        let spec = KeySpec::try_from(request).ok();
                        requested = spec;
                        let made = spec.map(|s| self.key_for(s));
                        if !self.config.key_generation_delay.is_zero() {
                            tokio::time::sleep(self.config.key_generation_delay).await;
                        }
                        match made {
                            Some(Ok(k)) => {
                                let sent = Instant::now();
                                session.send_public_key(sent, k.spki_der())?;
                                key_sent = Some(sent);
                                key = Some(k);
                            }
                            Some(Err(e)) => {
                                info!(error = %e, "key generation failed");
                                session.key_generation_failed(now, Reason::INVALID_ELEMENT)?;
                            }
                            None => session.key_generation_failed(now, Reason::INVALID_ELEMENT)?,
                        }
                    }
                    PhoneEvent::CertificateReceived { certificate } => {
                        key_to_certificate = key_sent.map(|sent| now.duration_since(sent));
                        // The LSC must carry the key just generated.
                        let matches = key
                            .as_ref()
                            .is_some_and(|k| certificate_has_key(&certificate.der, k));
                        let kept = match (&self.config.key_dir, &key) {
                            (Some(dir), Some(k)) if matches => dir
                                .promote(&certificate.der, k)
                                .map_err(|e| info!(error = %e, "the LSC cannot be kept"))
                                .is_ok(),
                            _ => matches,
                        };
                        session.store_result(now, kept)?;
                        if let (true, Some(k)) = (kept, key.clone()) {
                            self.config.lsc = Some(certificate.der.clone());
                            installed = Some((certificate.der, k));
                        }
                    }
                    PhoneEvent::CsrSignatureRequested { csr_info_der } => {
                        // Spec 16: sign the CSR for the key just sent, with that key.
                        match key.as_ref().map(|k| sign_csr_info(&csr_info_der, k)) {
                            Some(Ok(signature)) => session.send_csr_signature(now, &signature)?,
                            Some(Err(e)) => {
                                info!(error = %e, "cannot sign the endpoint CSR");
                                session.csr_signing_failed(now, Reason::INVALID_ELEMENT)?;
                            }
                            None => session.csr_signing_failed(now, Reason::INVALID_ELEMENT)?,
                        }
                    }
                    PhoneEvent::RetryLater { delay_secs } => {
                        // The pending key stays in the key directory for the next session.
                        info!(device = %self.config.device_name, delay_secs, "RETRY_LATER");
                        retry_after = Some(Duration::from_secs(u64::from(delay_secs)));
                    }
                    PhoneEvent::FetchRequested => {
                        let cert = self.config.lsc.clone().map(Certificate::lsc).or_else(|| {
                            self.config.mic.clone().map(|der| Certificate {
                                certificate_type: capf_wire::CertificateType::MIC,
                                der,
                            })
                        });
                        session.send_certificate(now, cert.as_ref())?;
                        fetched = cert.is_some();
                    }
                    PhoneEvent::DeleteRequested => {
                        deleted = self.config.lsc.take().is_some();
                        session.delete_result(now, deleted)?;
                    }
                    PhoneEvent::Closed { outcome } => break outcome,
                    other => debug!(event = ?other, "event"),
                }
                continue;
            }
            let deadline = session.poll_timeout();
            tokio::select! {
                read = tls.read(&mut buf) => match read {
                    Ok(0) | Err(_) => session.handle_eof(Instant::now()),
                    Ok(n) => session.handle_input(Instant::now(), &buf[..n]),
                },
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => session.handle_timeout(Instant::now()),
            }
        };
        let _ = tls.shutdown().await;
        info!(device = %self.config.device_name, outcome = ?outcome, "session over");
        Ok(Enrollment {
            outcome,
            server,
            sessions: 1,
            requested,
            installed,
            deleted,
            fetched,
            retry_after,
            key_to_certificate,
        })
    }
}

impl Phone {
    /// The key to answer a KEY_GEN_REQUEST for `spec` with: the pending key of the output
    /// directory when it is of `spec` (no new key), else a new one from the key source, kept
    /// as the pending key.
    fn key_for(&self, spec: KeySpec) -> Result<PhoneKey, Error> {
        let Some(dir) = &self.config.key_dir else {
            return self.keys.key(spec);
        };
        if let Some(key) = dir.pending_for(spec)? {
            info!(device = %self.config.device_name, %spec, "answering with the pending key");
            return Ok(key);
        }
        let key = self.keys.key(spec)?;
        dir.save_pending(&key)?;
        Ok(key)
    }
}

/// AUTH_RESPONSE for the phone's authentication mode (spec 6 and 8.9).
fn auth_response(
    config: &PhoneConfig,
    version: u8,
    session_id: u32,
) -> Result<AuthResponse<'static>, Error> {
    let name = config.device_name.to_string();
    let response = AuthResponse::new(name.clone(), version)?;
    Ok(match &config.auth {
        PhoneAuth::AuthenticationString(s) => response.with_password(s.clone())?,
        PhoneAuth::ExistingCertificate(proof) => {
            let sign = |key: &PhoneKey, digest, data: &[u8]| {
                capf_lsc::sign_auth_signature(key.pkcs8_der(), digest, data).map_err(|source| {
                    Error::Lsc {
                        what: "authentication signature",
                        source,
                    }
                })
            };
            let blob = capf_wire::auth_signed_content(&name, &proof.certificate);
            let sha1 = sign(&proof.key, capf_lsc::AuthDigest::Sha1, &blob)?;
            let sha512 = sign(&proof.key, capf_lsc::AuthDigest::Sha512, &blob)?;
            let certificate = capf_wire::CertificateValue::new(
                proof.certificate_type,
                proof.certificate.clone(),
            )?;
            let mut response = response
                .with_password("")?
                .with_certificate(certificate)?
                .with_signed_data(sha1)?
                .with_sha2_signed_data(capf_wire::Sha2SignedData::new(
                    capf_wire::HashAlgorithm::SHA512,
                    sha512,
                )?)?;
            if let Some((sudi_der, sudi_key)) = &proof.sudi {
                let sudi_blob = capf_wire::sudi_signed_content(session_id, sudi_der);
                let a = sign(sudi_key, capf_lsc::AuthDigest::Sha1, &sudi_blob)?;
                let b = sign(sudi_key, capf_lsc::AuthDigest::Sha512, &sudi_blob)?;
                response = response.with_sudi_data(capf_wire::SudiData::new(sudi_der, &a, &b)?)?;
            }
            response
        }
        _ => response.with_password("")?,
    })
}

fn certificate_has_key(der: &[u8], key: &PhoneKey) -> bool {
    use capf_lsc::der::Encode;
    X509::from_der(der)
        .ok()
        .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
        .is_some_and(|spki| spki == key.spki_der())
}

/// A TCP connection to `addr` within `timeout`, Nagle off (one CAPF message per write): the
/// first step of every phone session, over rustls or the legacy OpenSSL client.
pub(crate) async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Error> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| Error::TimedOut {
            step: "TCP connect",
        })?
        .map_err(|source| Error::Io {
            step: "TCP connect",
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

#[cfg(all(test, not(feature = "legacy-tls")))]
mod tests {
    use super::*;

    /// Without the `legacy-tls` feature, a phone asked to speak TLS 1.0 or 1.1 is refused by
    /// name rather than offered TLS 1.2 or 1.3 in silence (issue 15).
    #[test]
    fn a_build_without_the_feature_refuses_a_legacy_phone() -> Result<(), Box<dyn std::error::Error>>
    {
        let issuer =
            capf_test_support::capf_issuer(capf_lsc::KeySpec::Rsa(capf_lsc::RsaBits::B2048));
        let pem = capf_lsc::certificate_to_pem(issuer.certificate())?;
        let name = DeviceName::new("SEP001122334455")?;
        for versions in [TlsVersions::Tls10Only, TlsVersions::Tls11Only] {
            let mut config = PhoneConfig::new(name.clone(), "127.0.0.1", pem.as_bytes())?;
            config.tls_versions = versions;
            match Phone::new(config, Arc::new(GenerateKeys)) {
                Err(refused @ Error::LegacyTlsVersions(v)) if v == versions => {
                    assert!(refused.to_string().contains("legacy-tls"), "{refused}");
                }
                other => panic!("{versions:?}: expected LegacyTlsVersions, got {other:?}"),
            }
        }
        let mut config = PhoneConfig::new(name, "127.0.0.1", pem.as_bytes())?;
        config.tls_versions = TlsVersions::default();
        assert!(Phone::new(config, Arc::new(GenerateKeys)).is_ok());
        Ok(())
    }
}
