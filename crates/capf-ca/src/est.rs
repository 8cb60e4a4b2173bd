//! The EST client (RFC 7030, with RFC 8951's clarifications): `simpleenroll`,
//! `simplereenroll` and `cacerts` at `https://HOST:PORT/.well-known/est/[LABEL/]`, HTTP Basic
//! authentication, PKCS#10 and certs-only CMS in base64.

use std::time::Duration;

use base64::Engine as _;
use capf_lsc::OnlineCaConfig;
use capf_lsc::der::{Decode, Encode};
use capf_lsc::x509_cert::Certificate;
use capf_lsc::x509_cert::request::CertReq;

use crate::Error;
use crate::http::{HttpsConnection, Request, Response, TrustAnchors};
use crate::online::{BoxFuture, OnlineAnswer, OnlineCaClient};
use crate::pkcs7;

/// The wait assumed when a 202 carries no usable `Retry-After` (RFC 7030 section 4.2.3 makes
/// it mandatory; a server that omits it is asked again after a minute).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// An EST client for one Online CA's settings.
#[derive(Debug)]
pub struct EstClient {
    config: OnlineCaConfig,
    anchors: TrustAnchors,
    timeout: Duration,
}

impl EstClient {
    /// A client for `config` (its type should be EST), verifying the server against
    /// `anchors`, each exchange within `timeout`.
    pub fn new(config: OnlineCaConfig, anchors: TrustAnchors, timeout: Duration) -> Self {
        EstClient {
            config,
            anchors,
            timeout,
        }
    }

    /// The path of `operation` (RFC 7030 section 3.2.2), with the label when one is set.
    pub fn path(&self, operation: &str) -> String {
        match &self.config.label {
            Some(label) => format!("/.well-known/est/{label}/{operation}"),
            None => format!("/.well-known/est/{operation}"),
        }
    }

    fn basic(&self) -> String {
        let pair = format!("{}:{}", self.config.username, self.config.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    async fn exchange(&self, request: Request) -> Result<Response, Error> {
        let mut conn = HttpsConnection::connect(
            &self.config.host,
            self.config.port,
            &self.anchors,
            self.timeout,
        )
        .await?;
        conn.send(request.header("authorization", self.basic()))
            .await
    }

    /// POSTs `csr_der` to `simpleenroll` or `simplereenroll`.
    ///
    /// # Errors
    /// The errors of [`EstClient::answer`] and of the connection.
    pub async fn simple_enroll(
        &self,
        csr_der: &[u8],
        reenroll: bool,
    ) -> Result<OnlineAnswer, Error> {
        let operation = if reenroll {
            "simplereenroll"
        } else {
            "simpleenroll"
        };
        let path = self.path(operation);
        let body = base64_lines(csr_der);
        let request = Request::post(path.clone(), body)
            .header("content-type", "application/pkcs10")
            .header("content-transfer-encoding", "base64");
        let response = self.exchange(request).await?;
        self.answer(&path, &response, Some(csr_der))
    }

    /// What an EST enrollment `response` means (RFC 7030 section 4.2.3): 200 a certificate
    /// (the one certifying the CSR's key, when `csr_der` is given), 202 pending with its
    /// `Retry-After`, 400/401/404/5xx distinct errors.
    ///
    /// # Errors
    /// [`Error::CaRefused`] (400 and other refusals), [`Error::Unauthorized`],
    /// [`Error::NotFound`], [`Error::ServerError`], [`Error::BadResponse`].
    pub fn answer(
        &self,
        path: &str,
        response: &Response,
        csr_der: Option<&[u8]>,
    ) -> Result<OnlineAnswer, Error> {
        match response.status {
            200 => {
                let mut certs = self.certificates(response)?;
                let wanted = csr_der
                    .and_then(|der| CertReq::from_der(der).ok())
                    .and_then(|csr| csr.info.public_key.to_der().ok());
                let position = wanted.and_then(|spki| {
                    certs.iter().position(|c| {
                        Certificate::from_der(c).ok().is_some_and(|c| {
                            c.tbs_certificate()
                                .subject_public_key_info()
                                .to_der()
                                .ok()
                                .is_some_and(|d| d == spki)
                        })
                    })
                });
                let certificate = certs.remove(position.unwrap_or(0));
                Ok(OnlineAnswer::Issued {
                    certificate,
                    chain: certs,
                })
            }
            202 => Ok(OnlineAnswer::Pending {
                ca_request_id: None,
                retry_after: response
                    .header("retry-after")
                    .and_then(retry_after)
                    .unwrap_or(DEFAULT_RETRY_AFTER),
            }),
            status => Err(self.refusal(path, status, response)),
        }
    }

    fn refusal(&self, path: &str, status: u16, response: &Response) -> Error {
        let detail = response.body_line();
        match status {
            401 => Error::Unauthorized {
                username: self.config.username.clone(),
            },
            404 => Error::NotFound {
                path: path.to_owned(),
            },
            500..=599 => Error::ServerError { status, detail },
            _ => Error::CaRefused { status, detail },
        }
    }

    /// The certificates of a 200 answer: `application/pkcs7-mime` (with or without
    /// `smime-type`), base64 with or without line breaks.
    fn certificates(&self, response: &Response) -> Result<Vec<Vec<u8>>, Error> {
        let bad = |detail: String| Error::BadResponse {
            authority: format!("{}:{}", self.config.host, self.config.port),
            detail,
        };
        let content_type = response.header("content-type").unwrap_or("");
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media != "application/pkcs7-mime" {
            return Err(bad(format!(
                "Content-Type {content_type:?}, not application/pkcs7-mime"
            )));
        }
        let der = pkcs7::base64_lenient(&response.body).map_err(bad)?;
        let certs = pkcs7::certificates(&der).map_err(bad)?;
        if certs.is_empty() {
            return Err(bad("a certs-only PKCS#7 with no certificate".into()));
        }
        Ok(certs)
    }

    /// GETs `cacerts`: the CA's certificates (RFC 7030 section 4.1).
    ///
    /// # Errors
    /// As [`EstClient::answer`].
    pub async fn cacerts(&self) -> Result<Vec<Vec<u8>>, Error> {
        let path = self.path("cacerts");
        let response = self.exchange(Request::get(path.clone())).await?;
        if response.status != 200 {
            return Err(self.refusal(&path, response.status, &response));
        }
        self.certificates(&response)
    }

    /// GETs `cacerts` **without authenticating the server** (RFC 7030 section 4.1.1's
    /// bootstrap) and without credentials: the chain to show an administrator, who confirms
    /// the root's fingerprint out of band before trusting it.
    ///
    /// # Errors
    /// As [`EstClient::cacerts`].
    pub async fn cacerts_unauthenticated_bootstrap(&self) -> Result<Vec<Vec<u8>>, Error> {
        let path = self.path("cacerts");
        let mut conn = HttpsConnection::connect_unauthenticated_bootstrap(
            &self.config.host,
            self.config.port,
            self.timeout,
        )
        .await?;
        // No Authorization: the server is not known to be the CA.
        let response = conn.send(Request::get(path.clone())).await?;
        if response.status != 200 {
            return Err(self.refusal(&path, response.status, &response));
        }
        self.certificates(&response)
    }
}

/// Base64 in 64-character lines, as RFC 7030's examples send a PKCS#10.
fn base64_lines(der: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = Vec::with_capacity(text.len() + text.len() / 64 + 2);
    for chunk in text.as_bytes().chunks(64) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `Retry-After` in seconds (RFC 9110 section 10.2.3; the HTTP-date form is rare from EST
/// servers and left to the default).
fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl OnlineCaClient for EstClient {
    fn enroll(&self, csr_der: &[u8], reenroll: bool) -> BoxFuture<'_, Result<OnlineAnswer, Error>> {
        let csr = csr_der.to_vec();
        Box::pin(async move { self.simple_enroll(&csr, reenroll).await })
    }

    /// RFC 7030 section 4.2.3: the client repeats the same request.
    fn poll(
        &self,
        csr_der: &[u8],
        _ca_request_id: Option<&str>,
    ) -> BoxFuture<'_, Result<OnlineAnswer, Error>> {
        let csr = csr_der.to_vec();
        Box::pin(async move { self.simple_enroll(&csr, false).await })
    }

    fn ca_certificates(&self) -> BoxFuture<'_, Result<Vec<Vec<u8>>, Error>> {
        Box::pin(self.cacerts())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use capf_lsc::{OnlineCaParams, Secret};

    fn client(label: Option<&str>) -> EstClient {
        let config = OnlineCaConfig::new(&OnlineCaParams {
            host: "127.0.0.1".into(),
            port: 8085,
            ca_type: "est".into(),
            username: "estuser".into(),
            password: Secret::new("estpwd"),
            template: None,
            label: label.map(str::to_owned),
        })
        .unwrap();
        EstClient::new(config, TrustAnchors::from_der([]), Duration::from_secs(1))
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
        Response {
            status,
            http_1_0: true,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn paths_carry_the_label_as_one_segment() {
        assert_eq!(
            client(None).path("simpleenroll"),
            "/.well-known/est/simpleenroll"
        );
        assert_eq!(
            client(Some("cucm-lsc")).path("cacerts"),
            "/.well-known/est/cucm-lsc/cacerts"
        );
    }

    #[test]
    fn statuses_are_distinct_errors_without_the_password() {
        let c = client(None);
        let p = "/.well-known/est/simpleenroll";
        let bad = c
            .answer(
                p,
                &response(400, &[], b"Invalid or corrupted pkcs10 request.\n"),
                None,
            )
            .unwrap_err();
        assert!(matches!(bad, Error::CaRefused { status: 400, .. }), "{bad}");
        assert!(bad.to_string().contains("Invalid or corrupted pkcs10"));
        let unauthorized = c.answer(p, &response(401, &[], b""), None).unwrap_err();
        assert!(matches!(unauthorized, Error::Unauthorized { .. }));
        assert!(
            !unauthorized.to_string().contains("estpwd"),
            "{unauthorized}"
        );
        assert!(unauthorized.to_string().contains("estuser"));
        assert!(matches!(
            c.answer(p, &response(404, &[], b""), None),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            c.answer(p, &response(503, &[], b"busy"), None),
            Err(Error::ServerError { status: 503, .. })
        ));
    }

    #[test]
    fn a_202_is_pending_with_its_retry_after() {
        let c = client(None);
        let pending = c
            .answer("/x", &response(202, &[("retry-after", "3600")], b""), None)
            .unwrap();
        assert_eq!(
            pending,
            OnlineAnswer::Pending {
                ca_request_id: None,
                retry_after: Duration::from_secs(3600)
            }
        );
        let default = c.answer("/x", &response(202, &[], b""), None).unwrap();
        assert!(
            matches!(default, OnlineAnswer::Pending { retry_after, .. } if retry_after == DEFAULT_RETRY_AFTER)
        );
    }

    #[test]
    fn a_200_that_is_not_pkcs7_is_a_bad_response() {
        let c = client(None);
        let err = c
            .answer(
                "/x",
                &response(200, &[("content-type", "text/html")], b"<html>"),
                None,
            )
            .unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }), "{err}");
        let err = c
            .answer(
                "/x",
                &response(200, &[("content-type", "application/pkcs7-mime")], b"!!"),
                None,
            )
            .unwrap_err();
        assert!(matches!(err, Error::BadResponse { .. }), "{err}");
    }
}
