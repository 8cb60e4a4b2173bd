//! The AD CS conversation over one HTTPS connection, apart from how the connection is made:
//! authentication as the server asks (NTLM's three legs on the connection, or Basic), then the
//! Web Enrollment requests. [`Connection`] is what [`crate::http::HttpsConnection`] provides.

use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::ntlm::{self, Challenge, ChallengeError, Credentials};
use super::page::{self, Disposition, NotEnglish};
use crate::http::{Request, Response};

/// The body as text (AD CS pages are UTF-8; anything else is read lossily).
fn text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The media type of Content-Type, lower case, without parameters.
fn media_type(response: &Response) -> String {
    response
        .header("content-type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A future of the conversation.
pub(crate) type ExchangeFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One HTTP/1.1 connection: requests are sent one after another on it.
pub(crate) trait Connection: Send {
    /// The transport's error (the http module's: unreachable, timeout, TLS).
    type Error: Send;
    /// Sends `request`, returns the response.
    fn send<'a>(
        &'a mut self,
        request: &'a Request,
    ) -> ExchangeFuture<'a, Result<Response, Self::Error>>;
}

/// Why the conversation failed, before it becomes capf-ca's `Error`.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// The connection failed.
    Transport(E),
    /// 401 after the credentials were sent.
    Unauthorized,
    /// 401 offering neither NTLM nor Basic (its WWW-Authenticate values).
    NoUsableAuthentication(String),
    /// The NTLM exchange went wrong.
    Ntlm(ChallengeError),
    /// A status other than 200 where AD CS answers 200: the path asked for, and the body's first
    /// line.
    Status {
        status: u16,
        what: &'static str,
        detail: String,
    },
    /// The page is not an English AD CS page.
    NotEnglish(NotEnglish),
    /// `certcarc.asp` gave no renewal count, or certnew.p7b is not PKCS#7.
    UnexpectedReply(&'static str),
}

/// How the server authenticates this client, learnt from its first 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Ntlm,
    /// "Negotiate" offered alone: NTLM tokens under that scheme name.
    Negotiate,
    Basic,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Ntlm => "NTLM",
            Scheme::Negotiate => "Negotiate",
            Scheme::Basic => "Basic",
        }
    }

    /// NTLM first (Cisco's IIS setup lists it first; Kerberos is not supported), then Basic.
    fn offered(response: &Response) -> Option<Scheme> {
        let offered: Vec<String> = response
            .headers_named("www-authenticate")
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.split_whitespace().next())
            .map(str::to_ascii_lowercase)
            .collect();
        [Scheme::Ntlm, Scheme::Negotiate, Scheme::Basic]
            .into_iter()
            .find(|s| offered.iter().any(|o| o.eq_ignore_ascii_case(s.name())))
    }
}

/// The browser-like User-Agent: IIS gives certificates the wrong Content-Type otherwise (recipe).
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) capf-online-ca";

/// A conversation with the CA on one connection.
pub(crate) struct Session<'c, C: Connection> {
    connection: &'c mut C,
    username: &'c str,
    password: &'c str,
    /// Set once the server asked: Basic goes on every request, NTLM authenticates the connection.
    scheme: Option<Scheme>,
    /// The client challenge and FILETIME for NTLM (random and now, or fixed in tests).
    ntlm_inputs: fn() -> ([u8; 8], u64),
}

/// Random client challenge, the time now.
pub(crate) fn ntlm_inputs() -> ([u8; 8], u64) {
    let mut challenge = [0u8; 8];
    // A failed RNG leaves zeros: the response is still valid NTLMv2, only less fresh.
    let _ = getrandom::fill(&mut challenge);
    (challenge, ntlm::filetime(std::time::SystemTime::now()))
}

impl<'c, C: Connection> Session<'c, C> {
    pub(crate) fn new(connection: &'c mut C, username: &'c str, password: &'c str) -> Self {
        Session {
            connection,
            username,
            password,
            scheme: None,
            ntlm_inputs,
        }
    }

    #[cfg(test)]
    fn with_ntlm_inputs(mut self, inputs: fn() -> ([u8; 8], u64)) -> Self {
        self.ntlm_inputs = inputs;
        self
    }

    async fn send_raw(&mut self, request: &Request) -> Result<Response, Failure<C::Error>> {
        self.connection
            .send(request)
            .await
            .map_err(Failure::Transport)
    }

    /// Sends `request`, authenticating when the server answers 401.
    pub(crate) async fn send(
        &mut self,
        mut request: Request,
    ) -> Result<Response, Failure<C::Error>> {
        request.headers.push(("User-Agent", USER_AGENT.to_owned()));
        if self.scheme == Some(Scheme::Basic) {
            request.headers.push(("Authorization", self.basic()));
        }
        let response = self.send_raw(&request).await?;
        if response.status != 401 {
            return Ok(response);
        }
        if self.scheme == Some(Scheme::Basic) {
            return Err(Failure::Unauthorized);
        }
        let Some(scheme) = Scheme::offered(&response) else {
            let offered: Vec<&str> = response.headers_named("www-authenticate").collect();
            return Err(Failure::NoUsableAuthentication(offered.join(", ")));
        };
        self.scheme = Some(scheme);
        match scheme {
            Scheme::Basic => {
                request.headers.push(("Authorization", self.basic()));
                let response = self.send_raw(&request).await?;
                if response.status == 401 {
                    return Err(Failure::Unauthorized);
                }
                Ok(response)
            }
            Scheme::Ntlm | Scheme::Negotiate => self.ntlm(request, scheme).await,
        }
    }

    fn basic(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password))
        )
    }

    /// NTLM's three legs on this connection: NEGOTIATE, the server's CHALLENGE in a 401, then
    /// AUTHENTICATE with the request, whose response is the answer.
    async fn ntlm(
        &mut self,
        request: Request,
        scheme: Scheme,
    ) -> Result<Response, Failure<C::Error>> {
        let negotiate = ntlm::negotiate_message();
        let mut leg = request.clone();
        leg.headers.push((
            "Authorization",
            format!("{} {}", scheme.name(), BASE64.encode(&negotiate)),
        ));
        let response = self.send_raw(&leg).await?;
        if response.status != 401 {
            return Ok(response);
        }
        let challenge_bytes = response
            .headers_named("www-authenticate")
            .filter_map(|v| {
                let (name, token) = v.trim().split_once(' ')?;
                name.eq_ignore_ascii_case(scheme.name())
                    .then(|| token.trim())
            })
            .find_map(|token| BASE64.decode(token).ok())
            .ok_or(Failure::Unauthorized)?;
        let challenge = Challenge::parse(&challenge_bytes).map_err(Failure::Ntlm)?;
        let credentials = Credentials::new(self.username, self.password);
        let (client_challenge, now) = (self.ntlm_inputs)();
        let authenticate = ntlm::authenticate_message(
            &negotiate,
            &challenge_bytes,
            &challenge,
            &credentials,
            client_challenge,
            now,
            "CAPF",
        )
        .map_err(Failure::Ntlm)?;
        let mut leg = request;
        leg.headers.push((
            "Authorization",
            format!("{} {}", scheme.name(), BASE64.encode(&authenticate)),
        ));
        let response = self.send_raw(&leg).await?;
        if response.status == 401 {
            return Err(Failure::Unauthorized);
        }
        Ok(response)
    }

    fn get(path: String) -> Request {
        Request {
            method: "GET",
            path,
            headers: vec![("Accept", "*/*".to_owned())],
            body: Vec::new(),
        }
    }

    /// `POST /certsrv/certfnsh.asp` with the CSR and template (recipe): the disposition.
    pub(crate) async fn submit(
        &mut self,
        csr_der: &[u8],
        template: &str,
    ) -> Result<Disposition, Failure<C::Error>> {
        let body = form(&[
            ("Mode", "newreq"),
            ("CertRequest", &csr_pem(csr_der)),
            ("CertAttrib", &format!("CertificateTemplate:{template}\r\n")),
            ("FriendlyType", "Saved-Request Certificate"),
            ("TargetStoreFlags", "0"),
            ("SaveCert", "yes"),
        ]);
        let request = Request {
            method: "POST",
            path: "/certsrv/certfnsh.asp".to_owned(),
            headers: vec![
                ("Accept", "*/*".to_owned()),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
            ],
            body: body.into_bytes(),
        };
        let response = self.send(request).await?;
        if response.status != 200 {
            return Err(Failure::Status {
                status: response.status,
                what: "/certsrv/certfnsh.asp",
                detail: first_line(&response),
            });
        }
        page::certfnsh(&text(&response), response.header("content-language"))
            .map_err(Failure::NotEnglish)
    }

    /// `GET /certsrv/certnew.cer?ReqID=N&Enc=bin`: the certificate (DER), or the disposition
    /// of a request not issued.
    pub(crate) async fn fetch(
        &mut self,
        req_id: &str,
    ) -> Result<Result<Vec<u8>, Disposition>, Failure<C::Error>> {
        let response = self
            .send(Self::get(format!(
                "/certsrv/certnew.cer?ReqID={req_id}&Enc=bin"
            )))
            .await?;
        if response.status != 200 {
            return Err(Failure::Status {
                status: response.status,
                what: "/certsrv/certnew.cer",
                detail: first_line(&response),
            });
        }
        if media_type(&response) == "application/pkix-cert" {
            return Ok(Ok(response.body));
        }
        page::certnew_error(&text(&response), response.header("content-language"))
            .map(Err)
            .map_err(Failure::NotEnglish)
    }

    /// `certcarc.asp`'s renewal count, then `certnew.p7b?ReqID=CACert&Renewal=N&Enc=bin`: the
    /// PKCS#7 certs-only bytes.
    pub(crate) async fn ca_chain_p7b(&mut self) -> Result<Vec<u8>, Failure<C::Error>> {
        let response = self
            .send(Self::get("/certsrv/certcarc.asp".to_owned()))
            .await?;
        if response.status != 200 {
            return Err(Failure::Status {
                status: response.status,
                what: "/certsrv/certcarc.asp",
                detail: first_line(&response),
            });
        }
        let renewals = page::renewals(&text(&response)).ok_or(Failure::UnexpectedReply(
            "certcarc.asp gives no renewal count (var nRenewals)",
        ))?;
        self.p7b(format!(
            "/certsrv/certnew.p7b?ReqID=CACert&Renewal={renewals}&Enc=bin"
        ))
        .await
    }

    /// `certnew.p7b?ReqID=N&Enc=bin`: an issued request's certificate with the CA's chain, the
    /// PKCS#7 certs-only bytes (the issued page's "Download certificate chain").
    pub(crate) async fn issued_chain_p7b(
        &mut self,
        req_id: &str,
    ) -> Result<Vec<u8>, Failure<C::Error>> {
        self.p7b(format!("/certsrv/certnew.p7b?ReqID={req_id}&Enc=bin"))
            .await
    }

    async fn p7b(&mut self, path: String) -> Result<Vec<u8>, Failure<C::Error>> {
        let response = self.send(Self::get(path)).await?;
        if response.status != 200 {
            return Err(Failure::Status {
                status: response.status,
                what: "/certsrv/certnew.p7b",
                detail: first_line(&response),
            });
        }
        if media_type(&response) != "application/x-pkcs7-certificates" {
            return Err(Failure::UnexpectedReply(
                "certnew.p7b is not application/x-pkcs7-certificates",
            ));
        }
        Ok(response.body)
    }
}

/// The body's first non-empty line, without markup, cut to 200 characters: for reasons.
fn first_line(response: &Response) -> String {
    let text = text(response);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let line = plain
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The CSR as PEM, as a browser pastes it into the form.
fn csr_pem(der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE REQUEST-----\r\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push_str("\r\n");
    }
    pem.push_str("-----END CERTIFICATE REQUEST-----\r\n");
    pem
}

/// application/x-www-form-urlencoded (HTML 4.01 17.13.4.1).
fn form(fields: &[(&str, &str)]) -> String {
    fn encode(out: &mut String, text: &str) {
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    out.push(char::from(byte));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, name);
        out.push('=');
        encode(&mut out, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers from a script, and keeps what was sent.
    #[derive(Default)]
    struct Scripted {
        replies: VecDeque<Response>,
        sent: Vec<Request>,
    }

    impl Connection for Scripted {
        type Error = &'static str;
        fn send<'a>(
            &'a mut self,
            request: &'a Request,
        ) -> ExchangeFuture<'a, Result<Response, &'static str>> {
            self.sent.push(request.clone());
            let reply = self.replies.pop_front().ok_or("closed");
            Box::pin(async move { reply })
        }
    }

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            http_1_0: false,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn auth_header(request: &Request) -> Option<&str> {
        request
            .headers
            .iter()
            .find(|(n, _)| *n == "Authorization")
            .map(|(_, v)| v.as_str())
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    const ISSUED: &str = r#"<A Href="certnew.cer?ReqID=42&amp;Enc=bin">Download certificate</A>"#;

    #[test]
    fn basic_is_sent_once_asked_and_then_on_every_request() {
        let mut connection = Scripted::default();
        connection.replies.extend([
            reply(401, &[("WWW-Authenticate", "Basic realm=\"ca\"")], ""),
            reply(200, &[("Content-Type", "text/html")], ISSUED),
            reply(200, &[("Content-Type", "application/pkix-cert")], "DER"),
        ]);
        let mut session = Session::new(&mut connection, "capf", "secret");
        let disposition = block_on(session.submit(&[0x30, 0x00], "CiscoRA")).unwrap();
        assert_eq!(
            disposition,
            Disposition::Issued {
                req_id: "42".into()
            }
        );
        assert_eq!(block_on(session.fetch("42")).unwrap(), Ok(b"DER".to_vec()));
        let sent = &connection.sent;
        assert_eq!(
            auth_header(&sent[0]),
            None,
            "no credentials before the server asks"
        );
        let basic = format!("Basic {}", BASE64.encode("capf:secret"));
        assert_eq!(auth_header(&sent[1]), Some(basic.as_str()));
        assert_eq!(auth_header(&sent[2]), Some(basic.as_str()));
        assert_eq!(sent[2].path, "/certsrv/certnew.cer?ReqID=42&Enc=bin");
        let body = String::from_utf8(sent[1].body.clone()).unwrap();
        assert!(
            body.starts_with(
                "Mode=newreq&CertRequest=-----BEGIN+CERTIFICATE+REQUEST-----%0D%0AMAA%3D%0D%0A"
            ),
            "{body}"
        );
        assert!(body.contains("&CertAttrib=CertificateTemplate%3ACiscoRA%0D%0A&FriendlyType=Saved-Request+Certificate&TargetStoreFlags=0&SaveCert=yes"), "{body}");
        assert!(sent.iter().all(|r| {
            r.headers
                .iter()
                .any(|(n, v)| *n == "User-Agent" && v.starts_with("Mozilla/5.0"))
        }));
    }

    #[test]
    fn a_second_401_is_wrong_credentials() {
        let mut connection = Scripted::default();
        connection.replies.extend([
            reply(401, &[("WWW-Authenticate", "Basic realm=\"ca\"")], ""),
            reply(401, &[("WWW-Authenticate", "Basic realm=\"ca\"")], ""),
        ]);
        let mut session = Session::new(&mut connection, "capf", "wrong");
        assert!(matches!(
            block_on(session.submit(&[0x30, 0], "T")),
            Err(Failure::Unauthorized)
        ));
    }

    #[test]
    fn ntlm_runs_its_three_legs_on_the_connection() {
        // The MS-NLMP 4.2.4.3 challenge as the server's second 401.
        let challenge = "TlRMTVNTUAACAAAADAAMADgAAAAzgoriASNFZ4mrze8AAAAAAAAAACQAJABEAAAABgBwFwAAAA9TAGUAcgB2AGUAcgACAAwARABvAG0AYQBpAG4AAQAMAFMAZQByAHYAZQByAAAAAAA=";
        let mut connection = Scripted::default();
        connection.replies.extend([
            reply(
                401,
                &[
                    ("WWW-Authenticate", "Negotiate"),
                    ("WWW-Authenticate", "NTLM"),
                ],
                "",
            ),
            reply(
                401,
                &[("WWW-Authenticate", &format!("NTLM {challenge}"))],
                "",
            ),
            reply(200, &[("Content-Type", "text/html")], ISSUED),
            reply(200, &[("Content-Type", "application/pkix-cert")], "DER"),
        ]);
        let mut session = Session::new(&mut connection, "Domain\\User", "Password")
            .with_ntlm_inputs(|| ([0xaa; 8], 0));
        assert_eq!(
            block_on(session.submit(&[0x30, 0], "CiscoRA")).unwrap(),
            Disposition::Issued {
                req_id: "42".into()
            }
        );
        // The connection is authenticated: the next request carries no credentials.
        assert_eq!(block_on(session.fetch("42")).unwrap(), Ok(b"DER".to_vec()));
        let sent = &connection.sent;
        assert_eq!(auth_header(&sent[0]), None);
        let negotiate = auth_header(&sent[1])
            .unwrap()
            .strip_prefix("NTLM ")
            .unwrap();
        assert_eq!(BASE64.decode(negotiate).unwrap(), ntlm::negotiate_message());
        let authenticate = BASE64
            .decode(
                auth_header(&sent[2])
                    .unwrap()
                    .strip_prefix("NTLM ")
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(&authenticate[..12], b"NTLMSSP\0\x03\0\0\0");
        // The spec's NTProofStr for these inputs (MS-NLMP 4.2.4.2.2) is in the NT response.
        let ntproof = [
            0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96, 0xaa, 0xbc, 0x92, 0x7b, 0xeb, 0xef,
            0x6a, 0x1c,
        ];
        assert!(authenticate.windows(16).any(|w| w == ntproof));
        assert_eq!(auth_header(&sent[3]), None);
        assert_eq!(sent[1].body, sent[2].body, "every leg carries the form");
    }

    #[test]
    fn unusable_authentication_and_statuses_are_named() {
        let mut connection = Scripted::default();
        connection
            .replies
            .push_back(reply(401, &[("WWW-Authenticate", "Kerberos")], ""));
        let mut session = Session::new(&mut connection, "u", "p");
        assert!(matches!(
            block_on(session.submit(&[0x30, 0], "T")),
            Err(Failure::NoUsableAuthentication(offered)) if offered == "Kerberos"
        ));
        let mut connection = Scripted::default();
        connection.replies.push_back(reply(500, &[], "boom"));
        let mut session = Session::new(&mut connection, "u", "p");
        assert!(matches!(
            block_on(session.fetch("1")),
            Err(Failure::Status { status: 500, .. })
        ));
    }

    #[test]
    fn the_ca_chain_is_fetched_for_the_current_renewal() {
        let mut connection = Scripted::default();
        connection.replies.extend([
            reply(
                200,
                &[("Content-Type", "text/html")],
                "<Script>\n var nRenewals=2;\n</Script>",
            ),
            reply(
                200,
                &[("Content-Type", "application/x-pkcs7-certificates")],
                "P7B",
            ),
        ]);
        let mut session = Session::new(&mut connection, "u", "p");
        assert_eq!(block_on(session.ca_chain_p7b()).unwrap(), b"P7B");
        assert_eq!(
            connection.sent[1].path,
            "/certsrv/certnew.p7b?ReqID=CACert&Renewal=2&Enc=bin"
        );
    }
}
