//! The guide's Online CA mode: [`OnlineCa`] implements [`CertificateAuthority`] over the
//! current Online CA settings, handing each request to the client of the configured type
//! ([`OnlineCaClient`]: EST, Microsoft AD CS).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use capf_lsc::{OnlineCaConfig, OnlineCaType};

use crate::http::TrustAnchors;
use crate::{CertificateAuthority, Error, IssueFuture, IssueOutcome, IssueRequest};

/// A boxed, sendable future: what [`OnlineCaClient`]'s methods return, so the trait is
/// object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one HTTPS exchange with an online CA may take (connect, TLS, answer). The
/// server's session has its own, shorter deadline on the whole call.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// What an online CA answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnlineAnswer {
    /// Signed: the certificate (DER) and the other certificates sent with it.
    Issued {
        /// The certificate.
        certificate: Vec<u8>,
        /// Intermediates (and perhaps the root), as sent.
        chain: Vec<Vec<u8>>,
    },
    /// Accepted, to be signed later (EST 202, an AD CS pending disposition).
    Pending {
        /// The CA's handle (an AD CS ReqID); `None` for EST, which is asked again with the
        /// same CSR.
        ca_request_id: Option<String>,
        /// When to ask again (EST `Retry-After`).
        retry_after: Duration,
    },
}

/// What an online CA client does: enroll a PKCS#10, poll a pending request, fetch the CA
/// chain. Object-safe; every error is one line an administrator can act on, without the
/// password.
pub trait OnlineCaClient: Send + Sync + std::fmt::Debug {
    /// Sends `csr_der` (PKCS#10, DER) for signing; `reenroll` when the device holds an LSC
    /// from this CA (EST `simplereenroll`).
    fn enroll(&self, csr_der: &[u8], reenroll: bool) -> BoxFuture<'_, Result<OnlineAnswer, Error>>;

    /// Asks again about a pending request: EST repeats the same CSR, AD CS asks by ReqID.
    fn poll(
        &self,
        csr_der: &[u8],
        ca_request_id: Option<&str>,
    ) -> BoxFuture<'_, Result<OnlineAnswer, Error>>;

    /// The CA's certificates (EST `/cacerts`, AD CS `certnew.p7b`), DER.
    fn ca_certificates(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, Error>>;
}

/// The client for `config`'s type, speaking to its host over TLS verified against `anchors`.
pub fn client_for(config: &OnlineCaConfig, anchors: &TrustAnchors) -> Arc<dyn OnlineCaClient> {
    match config.ca_type {
        OnlineCaType::Est => Arc::new(crate::est::EstClient::new(
            config.clone(),
            anchors.clone(),
            EXCHANGE_TIMEOUT,
        )),
        OnlineCaType::Microsoft => Arc::new(crate::certsrv::CertsrvClient::new(
            config.clone(),
            anchors.clone(),
            EXCHANGE_TIMEOUT,
        )),
        other => Arc::new(Missing {
            detail: format!("no client for the {} yet", other.label()),
        }),
    }
}

/// The CA's certificates fetched **without authenticating the server**: EST's bootstrap of
/// `/cacerts` (RFC 7030 section 4.1.1), with no credentials sent, for an administrator to see
/// the chain and confirm its root's fingerprint before trusting it.
///
/// # Errors
/// [`Error::NoBootstrap`] for a type other than EST (AD CS serves its chain only to an
/// authenticated user), and [`crate::est::EstClient::cacerts`]'s.
pub async fn ca_certificates_unauthenticated_bootstrap(
    config: &OnlineCaConfig,
) -> Result<Vec<Vec<u8>>, Error> {
    if config.ca_type != OnlineCaType::Est {
        return Err(Error::NoBootstrap {
            ca_type: config.ca_type.label(),
        });
    }
    crate::est::EstClient::new(config.clone(), TrustAnchors::from_der([]), EXCHANGE_TIMEOUT)
        .cacerts_unauthenticated_bootstrap()
        .await
}

/// A client that fails every call: the type has no client here.
#[derive(Debug)]
struct Missing {
    detail: String,
}

impl Missing {
    fn error(&self) -> Error {
        Error::NotConfigured {
            detail: self.detail.clone(),
        }
    }
}

impl OnlineCaClient for Missing {
    fn enroll(&self, _: &[u8], _: bool) -> BoxFuture<'_, Result<OnlineAnswer, Error>> {
        Box::pin(async move { Err(self.error()) })
    }
    fn poll(&self, _: &[u8], _: Option<&str>) -> BoxFuture<'_, Result<OnlineAnswer, Error>> {
        Box::pin(async move { Err(self.error()) })
    }
    fn ca_certificates(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, Error>> {
        Box::pin(async move { Err(self.error()) })
    }
}

#[derive(Debug)]
struct Current {
    config: OnlineCaConfig,
    anchors: TrustAnchors,
    client: Arc<dyn OnlineCaClient>,
}

/// The Online CA mode's issuer: the current settings and CAPF-trust anchors
/// ([`OnlineCa::configure`], re-applied by a running server as they change), and the client of
/// the configured type. A request needs the endpoint CSR ([`Error::CsrRequired`]).
#[derive(Debug, Default)]
pub struct OnlineCa {
    current: RwLock<Option<Arc<Current>>>,
}

impl OnlineCa {
    /// An Online CA with no settings yet: every request fails with [`Error::NotConfigured`].
    pub fn new() -> Self {
        OnlineCa::default()
    }

    /// Applies the settings (or none) and the anchors the CA's HTTPS certificate must chain
    /// to. A new client is made only when either changed, so calling it every few seconds is
    /// cheap.
    pub fn configure(&self, config: Option<OnlineCaConfig>, anchors: TrustAnchors) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let Some(config) = config else {
            *current = None;
            return;
        };
        if current
            .as_ref()
            .is_some_and(|c| c.config == config && c.anchors == anchors)
        {
            return;
        }
        let client = client_for(&config, &anchors);
        *current = Some(Arc::new(Current {
            config,
            anchors,
            client,
        }));
    }

    /// Uses `client` for `config` and `anchors` (a test double, or a client this crate does
    /// not build); a later [`OnlineCa::configure`] with the same settings and anchors keeps it.
    pub fn configure_with(
        &self,
        config: OnlineCaConfig,
        anchors: TrustAnchors,
        client: Arc<dyn OnlineCaClient>,
    ) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Current {
            config,
            anchors,
            client,
        }));
    }

    /// The client of the current settings.
    ///
    /// # Errors
    /// [`Error::NotConfigured`] when no Online CA is set.
    pub fn client(&self) -> Result<Arc<dyn OnlineCaClient>, Error> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|c| Arc::clone(&c.client))
            .ok_or_else(|| Error::NotConfigured {
                detail: "no Online CA is set (capfctl online-ca set)".into(),
            })
    }

    /// The current settings, if any.
    pub fn config(&self) -> Option<OnlineCaConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|c| c.config.clone())
    }
}

/// An answer as the issuer interface says it.
pub fn outcome(answer: OnlineAnswer) -> IssueOutcome {
    match answer {
        OnlineAnswer::Issued { certificate, chain } => IssueOutcome::Certificate {
            der: certificate,
            chain,
        },
        OnlineAnswer::Pending {
            ca_request_id,
            retry_after,
        } => IssueOutcome::Pending {
            request_id: ca_request_id,
            retry_after: Some(retry_after),
        },
    }
}

impl CertificateAuthority for OnlineCa {
    fn mode(&self) -> &'static str {
        "online CA"
    }

    fn issue(&self, request: IssueRequest, _now: SystemTime) -> IssueFuture<'_> {
        Box::pin(async move {
            let Some(csr) = request.endpoint_csr.as_ref() else {
                return Err(Error::CsrRequired {
                    device: request.device.as_str().to_owned(),
                    mode: self.mode(),
                });
            };
            let client = self.client()?;
            client
                .enroll(csr.der(), request.reenroll)
                .await
                .map(outcome)
        })
    }
}
