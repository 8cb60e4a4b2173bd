//! One HTTPS exchange with an online CA, on its own connection: HTTP/1.1 (HTTP/1.0 replies
//! accepted) over rustls, the server verified against CAPF-trust anchors and its name against
//! the configured hostname; never unverified, but for the one explicit EST bootstrap fetch of
//! the CA chain an administrator asks for
//! ([`HttpsConnection::connect_unauthenticated_bootstrap`]). A connection can carry several
//! requests in turn (NTLM's three legs need one connection). Every step has a deadline and a body has a bound.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;
use crate::tls_verify::OnlineCaVerifier;
use capf_lsc::OnlineCaHost;

/// The largest response body read: a CA chain or a certificate is a few kilobytes, an AD CS
/// page tens; a peer cannot make the server buffer more.
pub const MAX_BODY: usize = 1024 * 1024;

/// The certificates a CA's HTTPS certificate must chain to: CAPF-trust (the guide has the
/// administrator upload the CA root there, or the HTTPS certificate itself).
#[derive(Clone)]
pub struct TrustAnchors {
    der: Vec<Vec<u8>>,
    roots: Arc<rustls::RootCertStore>,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("anchors", &self.roots.len())
            .finish()
    }
}

impl PartialEq for TrustAnchors {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl TrustAnchors {
    /// Anchors from DER certificates; those rustls cannot use as an anchor are left out (the
    /// trust store's own rules decided what is in it).
    pub fn from_der(certificates: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let der: Vec<Vec<u8>> = certificates.into_iter().collect();
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(der.iter().map(|c| CertificateDer::from(c.clone())));
        TrustAnchors {
            der,
            roots: Arc::new(roots),
        }
    }

    /// How many anchors rustls accepted.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether there are none (then every connection fails verification).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// An HTTP request: method, path (with query), extra headers and body. `Host` and
/// `Content-Length` are added.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path and query, starting with `/`.
    pub path: String,
    /// Header names and values (an `Authorization` value is never logged or shown).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers may carry credentials: only their names.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Request {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A POST of `body` to `path`.
    pub fn post(path: impl Into<String>, body: Vec<u8>) -> Self {
        Request {
            method: "POST",
            path: path.into(),
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// An HTTP response: status, headers (names in lower case), body (at most [`MAX_BODY`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Whether the reply was HTTP/1.0.
    pub http_1_0: bool,
    /// Header names (lower case) and values, in order; values that are not visible ASCII are
    /// left out.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (any case), such as each `WWW-Authenticate` challenge.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's non-empty lines joined into one (`"; "`), trimmed and cut to 200
    /// characters: for failure reasons. The first line alone is often only the status
    /// (libEST's 400: "Error 400: Bad Request", then the reason on the next line).
    pub fn body_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        line.chars().filter(|c| !c.is_control()).take(200).collect()
    }
}

/// One TLS connection to an online CA.
pub struct HttpsConnection {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
    timeout: Duration,
}

impl fmt::Debug for HttpsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsConnection")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl HttpsConnection {
    /// Connects to `host:port` and completes the TLS handshake, the server's certificate
    /// verified against `anchors` for the name `host` (a DNS name or an IP address), all
    /// within `timeout`.
    ///
    /// # Errors
    /// [`Error::Unreachable`] (refused, no route), [`Error::Tls`] (handshake or verification
    /// failure), [`Error::Timeout`].
    pub async fn connect(
        host: &OnlineCaHost,
        port: u16,
        anchors: &TrustAnchors,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(OnlineCaVerifier::capf_trust(
            anchors.der.clone(),
            Arc::clone(&anchors.roots),
            Arc::clone(&provider),
        ));
        Self::connect_with(host, port, verifier, provider, timeout).await
    }

    /// Connects to `host:port` **without authenticating the server**: the EST bootstrap of
    /// RFC 7030 section 4.1.1, for fetching `/cacerts` to show an administrator, who confirms
    /// the root's fingerprint out of band before trusting it. Only the TLS handshake's
    /// signature is checked. Never send credentials over such a connection.
    ///
    /// # Errors
    /// As [`HttpsConnection::connect`].
    pub async fn connect_unauthenticated_bootstrap(
        host: &OnlineCaHost,
        port: u16,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(OnlineCaVerifier::unauthenticated_bootstrap(Arc::clone(
            &provider,
        )));
        Self::connect_with(host, port, verifier, provider, timeout).await
    }

    async fn connect_with(
        host: &OnlineCaHost,
        port: u16,
        verifier: Arc<dyn ServerCertVerifier>,
        provider: Arc<CryptoProvider>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let authority = format!("{host}:{port}");
        let name = ServerName::try_from(host.as_str().to_owned()).map_err(|e| Error::Tls {
            authority: authority.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls {
                authority: authority.clone(),
                source: std::io::Error::other(e),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let connector = TlsConnector::from(Arc::new(config));
        let connect = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|source| Error::Unreachable {
                    authority: authority.clone(),
                    source,
                })?;
            let _ = tcp.set_nodelay(true);
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|source| Error::Tls {
                    authority: authority.clone(),
                    source,
                })?;
            let (sender, connection) = hyper::client::conn::http1::Builder::new()
                .handshake(TokioIo::new(tls))
                .await
                .map_err(|source| Error::Http {
                    authority: authority.clone(),
                    source,
                })?;
            // The connection task ends when the sender is dropped or the peer closes.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<_, Error>(sender)
        };
        let sender =
            tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| Error::Timeout {
                    authority: authority.clone(),
                    what: "connecting",
                })??;
        Ok(HttpsConnection {
            sender,
            authority,
            timeout,
        })
    }

    /// The `host:port` connected to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends `request` and reads the whole response (at most [`MAX_BODY`]) within the
    /// connection's timeout.
    ///
    /// # Errors
    /// [`Error::Http`] (the connection failed or closed), [`Error::Timeout`],
    /// [`Error::BadResponse`] (body too large, bad header).
    pub async fn send(&mut self, request: Request) -> Result<Response, Error> {
        let authority = self.authority.clone();
        let mut builder = hyper::Request::builder()
            .method(request.method)
            .uri(request.path.as_str())
            .header("host", &authority)
            .header("content-length", request.body.len());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        let http = builder
            .body(Full::new(Bytes::from(request.body)))
            .map_err(|source| Error::BadRequest { source })?;
        let exchange = async {
            self.sender.ready().await.map_err(|source| Error::Http {
                authority: authority.clone(),
                source,
            })?;
            let response = self
                .sender
                .send_request(http)
                .await
                .map_err(|source| Error::Http {
                    authority: authority.clone(),
                    source,
                })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| Error::BadResponse {
                    authority: authority.clone(),
                    detail: format!("reading the body (at most {MAX_BODY} bytes): {e}"),
                })?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            Ok::<_, Error>(Response {
                status: parts.status.as_u16(),
                http_1_0: parts.version == hyper::Version::HTTP_10,
                headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                authority: self.authority.clone(),
                what: "waiting for the answer",
            })?
    }
}
