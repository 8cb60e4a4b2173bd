//! Microsoft AD CS through its Web Enrollment pages (`/certsrv/`), the guide's "Microsoft CA"
//! Online CA Type: [`CertsrvClient`] implements [`OnlineCaClient`] over the pages' HTML
//! (`page`) and NTLMv2 (`ntlm`), the authentication Cisco's setup documents require of IIS,
//! or Basic, as IIS asks.

mod exchange;
mod ntlm;
mod page;

use std::time::Duration;

use capf_lsc::OnlineCaConfig;

use crate::Error;
use crate::http::{HttpsConnection, Request, Response, TrustAnchors};
use crate::online::{BoxFuture, OnlineAnswer, OnlineCaClient};
use exchange::{Connection, ExchangeFuture, Failure, Session};
use page::{Disposition, NotEnglish};

/// How long to wait before asking about a pending request again: AD CS gives no Retry-After,
/// and an administrator approves in minutes at best.
pub const PENDING_RETRY: Duration = Duration::from_secs(60);

/// The AD CS Web Enrollment client for one Online CA's settings (type Microsoft CA): enroll by
/// `certfnsh.asp` then `certnew.cer` on one connection, poll by ReqID, the CA chain by
/// `certcarc.asp` and `certnew.p7b`. Authenticates as IIS asks: NTLM (preferred) or Basic.
#[derive(Debug)]
pub struct CertsrvClient {
    config: OnlineCaConfig,
    anchors: TrustAnchors,
    timeout: Duration,
}

impl Connection for HttpsConnection {
    type Error = Error;
    fn send<'a>(&'a mut self, request: &'a Request) -> ExchangeFuture<'a, Result<Response, Error>> {
        Box::pin(HttpsConnection::send(self, request.clone()))
    }
}

impl CertsrvClient {
    /// A client for `config` (its type should be Microsoft CA), verifying the server against
    /// `anchors`, each exchange within `timeout`.
    pub fn new(config: OnlineCaConfig, anchors: TrustAnchors, timeout: Duration) -> Self {
        CertsrvClient {
            config,
            anchors,
            timeout,
        }
    }

    fn authority(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    async fn connect(&self) -> Result<HttpsConnection, Error> {
        HttpsConnection::connect(
            &self.config.host,
            self.config.port,
            &self.anchors,
            self.timeout,
        )
        .await
    }

    /// The failure as capf-ca's error: one line, never the password.
    fn error(&self, failure: Failure<Error>) -> Error {
        let authority = self.authority();
        match failure {
            Failure::Transport(error) => error,
            Failure::Unauthorized => Error::Unauthorized {
                username: self.config.username.clone(),
            },
            Failure::NoUsableAuthentication(offered) => Error::BadResponse {
                authority,
                detail: format!(
                    "it offers neither NTLM nor Basic authentication (WWW-Authenticate: {offered})"
                ),
            },
            Failure::Ntlm(error) => Error::BadResponse {
                authority,
                detail: error.as_str().to_owned(),
            },
            Failure::Status { status: 404, what, .. } => Error::NotFound {
                path: what.to_owned(),
            },
            Failure::Status { status, what, detail } if status >= 500 => Error::ServerError {
                status,
                detail: format!("{what}: {detail}"),
            },
            Failure::Status { status, what, detail } => Error::BadResponse {
                authority,
                detail: format!("HTTP {status} for {what}: {detail}"),
            },
            Failure::NotEnglish(NotEnglish { language }) => Error::NotEnglish {
                detail: match language {
                    Some(language) => format!(
                        "its page is in language {language:?}; the Online CA works only with a CA server in English (the guide)"
                    ),
                    None => "its page is none of AD CS's English pages (issued, pending, denied); the Online CA works only with a CA server in English (the guide)".to_owned(),
                },
            },
            Failure::UnexpectedReply(detail) => Error::BadResponse {
                authority,
                detail: detail.to_owned(),
            },
        }
    }

    /// What a disposition means for the caller, once the request id is known.
    fn answer(&self, disposition: Disposition, req_id: &str) -> Result<OnlineAnswer, Error> {
        match disposition {
            Disposition::Pending { .. } => Ok(OnlineAnswer::Pending {
                ca_request_id: Some(req_id.to_owned()),
                retry_after: PENDING_RETRY,
            }),
            Disposition::Denied { message } => Err(Error::CaRefused {
                status: 200,
                detail: message,
            }),
            // certnew.cer does not answer with an issued page.
            Disposition::Issued { .. } => Err(Error::BadResponse {
                authority: self.authority(),
                detail: format!("certnew.cer for ReqID {req_id} gave no certificate"),
            }),
        }
    }

    /// Submits `csr_der` with the configured template and, when issued, fetches the
    /// certificate on the same connection.
    ///
    /// # Errors
    /// [`Error::CaRefused`] (denied: the CA's disposition message), [`Error::Unauthorized`],
    /// [`Error::NotEnglish`], [`Error::NotConfigured`] (no template), and the connection's.
    pub async fn submit(&self, csr_der: &[u8]) -> Result<OnlineAnswer, Error> {
        let template = self
            .config
            .template
            .as_deref()
            .ok_or_else(|| Error::NotConfigured {
                detail: "the Microsoft CA needs an Online CA Template".to_owned(),
            })?;
        let mut connection = self.connect().await?;
        let mut session = Session::new(
            &mut connection,
            &self.config.username,
            self.config.password.expose(),
        );
        let disposition = session
            .submit(csr_der, template)
            .await
            .map_err(|f| self.error(f))?;
        match disposition {
            Disposition::Issued { req_id } => {
                match session.fetch(&req_id).await.map_err(|f| self.error(f))? {
                    Ok(certificate) => Ok(Self::issued(&mut session, &req_id, certificate).await),
                    Err(disposition) => self.answer(disposition, &req_id),
                }
            }
            Disposition::Pending {
                req_id: Some(req_id),
            } => self.answer(Disposition::Pending { req_id: None }, &req_id),
            Disposition::Pending { req_id: None } => Err(Error::BadResponse {
                authority: self.authority(),
                detail: "the request is pending but the page gives no Request Id to ask about"
                    .to_owned(),
            }),
            Disposition::Denied { message } => Err(Error::CaRefused {
                status: 200,
                detail: message,
            }),
        }
    }

    /// Asks about request `req_id` (`certnew.cer?ReqID=`): issued, still pending, or denied.
    ///
    /// # Errors
    /// As [`CertsrvClient::submit`].
    pub async fn fetch(&self, req_id: &str) -> Result<OnlineAnswer, Error> {
        let mut connection = self.connect().await?;
        let mut session = Session::new(
            &mut connection,
            &self.config.username,
            self.config.password.expose(),
        );
        match session.fetch(req_id).await.map_err(|f| self.error(f))? {
            Ok(certificate) => Ok(Self::issued(&mut session, req_id, certificate).await),
            Err(disposition) => self.answer(disposition, req_id),
        }
    }

    /// The issued answer: `certificate` with the CA certificates of its request's
    /// `certnew.p7b`, so an LSC from an issuing CA below the CAPF-trust root chains without the
    /// administrator uploading the intermediate. The chain is a help, not a requirement: when
    /// the CA does not serve it, the chain is empty and the LSC must chain to CAPF-trust as it
    /// is (`check_external_lsc` says so if it does not).
    async fn issued(
        session: &mut Session<'_, HttpsConnection>,
        req_id: &str,
        certificate: Vec<u8>,
    ) -> OnlineAnswer {
        let chain = match session.issued_chain_p7b(req_id).await {
            Ok(p7b) => crate::pkcs7::certificates(&p7b)
                .map(|certificates| {
                    certificates
                        .into_iter()
                        .filter(|c| *c != certificate)
                        .collect()
                })
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        OnlineAnswer::Issued { certificate, chain }
    }

    /// The CA's certificates from `certnew.p7b` (DER).
    ///
    /// # Errors
    /// [`Error::BadResponse`] (no renewal count, not PKCS#7), and the connection's.
    pub async fn ca_chain(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut connection = self.connect().await?;
        let mut session = Session::new(
            &mut connection,
            &self.config.username,
            self.config.password.expose(),
        );
        let p7b = session.ca_chain_p7b().await.map_err(|f| self.error(f))?;
        crate::pkcs7::certificates(&p7b).map_err(|detail| Error::BadResponse {
            authority: self.authority(),
            detail: format!("certnew.p7b: {detail}"),
        })
    }
}

impl OnlineCaClient for CertsrvClient {
    fn enroll(
        &self,
        csr_der: &[u8],
        _reenroll: bool,
    ) -> BoxFuture<'_, Result<OnlineAnswer, Error>> {
        // AD CS has no re-enrollment of its own: a new request each time.
        let csr = csr_der.to_vec();
        Box::pin(async move { self.submit(&csr).await })
    }

    fn poll(
        &self,
        _csr_der: &[u8],
        ca_request_id: Option<&str>,
    ) -> BoxFuture<'_, Result<OnlineAnswer, Error>> {
        let req_id = ca_request_id.map(str::to_owned);
        Box::pin(async move {
            match req_id {
                Some(req_id) => self.fetch(&req_id).await,
                None => Err(Error::NotConfigured {
                    detail:
                        "a pending Microsoft CA request without its ReqID cannot be asked about"
                            .to_owned(),
                }),
            }
        })
    }

    fn ca_certificates(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, Error>> {
        Box::pin(self.ca_chain())
    }
}
