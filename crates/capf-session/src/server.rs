//! The server side of a CAPF session (spec sections 7, 8, 9.3 and 11).

use std::mem;
use std::time::Instant;

use capf_wire::{
    AuthRequest, AuthResponse, AuthType, CsrInfo, Deframer, DeleteCertificateRequest, ErrorPolicy,
    FetchCertificateRequest, Frame, KeyGenResponse, Message, Payload, Reason, RetryDelay,
    RetryLater, ServerAction, SignCertRequest, SignCertResponse, StoreCertificateRequest,
    Strictness,
};

use crate::core::{Core, Role, deadline_after, shared_session_calls};
use crate::error::{Error, Outcome, State};
use crate::types::{
    Authentication, Certificate, CsrAnswer, Decision, Timeouts, csr_answer, key_request_for_version,
};

/// The VERSION our server offers in AUTH_REQUEST (spec 5.3).
pub const SERVER_VERSION: u8 = 3;

/// The most REQUEST_IN_PROGRESS messages accepted in one key generation by default (spec 8.2
/// project rule).
pub const DEFAULT_MAX_REQUESTS_IN_PROGRESS: u32 = 16;

/// How many leading bytes of a bad message [`ServerSession::message_head`] keeps: spec 9.3 asks
/// a server to log the first 32 bytes when it closes on broken framing.
pub const MESSAGE_HEAD_LEN: usize = 32;

/// How a [`ServerSession`] behaves. Public fields and `Default`, like rustls' configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// AUTH_TYPE sent in AUTH_REQUEST: `Some(AuthType::NONE)` by default, as capfd (and the
    /// phones that work with it) do; `None` sends VERSION only, as UCM does to Jabber (spec 5.2).
    pub auth_type: Option<AuthType>,
    /// Deadlines for the peer's messages.
    pub timeouts: Timeouts,
    /// REQUEST_IN_PROGRESS messages accepted during one key generation; one more ends the
    /// session with END_SESSION 7 (spec 8.2 project rule: 16).
    pub max_requests_in_progress: u32,
    /// How strictly the phone's messages are decoded.
    pub strictness: Strictness,
    /// How decode errors are answered (a bad protocol id gets END_SESSION 7 by default).
    pub error_policy: ErrorPolicy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_type: Some(AuthType::NONE),
            timeouts: Timeouts::default(),
            max_requests_in_progress: DEFAULT_MAX_REQUESTS_IN_PROGRESS,
            strictness: Strictness::Strict,
            error_policy: ErrorPolicy::default(),
        }
    }
}

/// What a [`ServerSession`] reports to its application. The last event of every session is
/// [`ServerEvent::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// AUTH_RESPONSE arrived with an acceptable VERSION: look the device up, check its proof
    /// against its authentication mode and answer with [`ServerSession::decide`] (spec 7). The
    /// session waits without a deadline; the phone's messages meanwhile end it (END_SESSION 7).
    Authenticate(Box<Authentication>),
    /// REQUEST_IN_PROGRESS: the phone is generating its key; the key-generation deadline starts
    /// again. `count` is how many arrived so far.
    KeyGenerationInProgress {
        /// REQUEST_IN_PROGRESS messages so far in this session.
        count: u32,
    },
    /// KEY_GEN_RESPONSE with PUBLIC_KEY: issue an LSC for exactly this key and call
    /// [`ServerSession::deliver_certificate`] (or [`ServerSession::issuance_failed`]), or have
    /// the phone sign a CSR for an external CA first with
    /// [`ServerSession::request_csr_signature`] (spec 16). The DER is not checked here.
    PublicKey {
        /// The DER SubjectPublicKeyInfo.
        spki_der: Vec<u8>,
    },
    /// KEY_GEN_RESPONSE without a key: the phone could not generate it. END_SESSION 7 follows
    /// (spec 8.8).
    KeyGenerationFailed {
        /// The REASON the phone gave, if any.
        reason: Option<Reason>,
    },
    /// SIGN_CERT_RESPONSE with REASON 1 and CSR_SIGNATURE (spec 16): assemble and verify the
    /// PKCS#10 request, have the CA issue the LSC, then call
    /// [`ServerSession::deliver_certificate`], [`ServerSession::retry_later`] (the CA has not
    /// answered yet) or [`ServerSession::issuance_failed`]. The signature is not checked here.
    CsrSigned {
        /// CSR_SIGNATURE: the phone's signature over the CSR_INFO sent.
        signature: Vec<u8>,
    },
    /// SIGN_CERT_RESPONSE with a REASON other than 1, alone: the phone could not sign.
    /// END_SESSION 7 follows (spec 16).
    CsrSigningFailed {
        /// The REASON the phone gave.
        reason: Reason,
    },
    /// STORE_CERT_RESPONSE with REASON 1: the phone stored the LSC; only now is it installed
    /// (spec 8.2 project rule). END_SESSION 1 follows.
    CertificateStored,
    /// STORE_CERT_RESPONSE with another REASON: the phone could not store the LSC, which stays
    /// issued but unconfirmed. END_SESSION 1 follows anyway (spec 8.2).
    StoreFailed {
        /// The REASON the phone gave (7 in practice).
        reason: Reason,
    },
    /// FETCH_CERT_RESPONSE (Troubleshoot, spec 8.4). END_SESSION 0 follows.
    Fetched {
        /// 1 with a certificate, 7 when the phone has none.
        reason: Reason,
        /// The phone's certificate, if it sent one.
        certificate: Option<Certificate>,
    },
    /// DELETE_CERT_RESPONSE (spec 8.5). END_SESSION 1 follows.
    Deleted {
        /// 1 deleted, 7 nothing deleted.
        reason: Reason,
    },
    /// The session is over: close the connection once every transmit is written.
    Closed {
        /// Why.
        outcome: Outcome,
    },
}

/// The server's states (spec 11), each holding what it needs; transitions consume them.
#[derive(Debug)]
enum Expect {
    Auth,
    Decision { version: u8 },
    Key { in_progress: u32 },
    Certificate,
    CsrSignature,
    CaCertificate,
    Store,
    Fetch,
    Delete,
    Closed,
}

impl Expect {
    fn state(&self) -> State {
        match self {
            Expect::Auth => State::WaitAuth,
            Expect::Decision { .. } => State::AwaitingDecision,
            Expect::Key { .. } => State::WaitKey,
            Expect::Certificate => State::AwaitingCertificate,
            Expect::CsrSignature => State::WaitCsrSignature,
            Expect::CaCertificate => State::AwaitingCaCertificate,
            Expect::Store => State::WaitStore,
            Expect::Fetch => State::WaitFetch,
            Expect::Delete => State::WaitDelete,
            Expect::Closed => State::Closed,
        }
    }
}

/// One CAPF session, server side, without I/O (like quinn-proto's `Connection`).
///
/// The driver feeds it the bytes TLS delivers ([`handle_input`](Self::handle_input), any
/// chunking), writes every [`poll_transmit`](Self::poll_transmit) buffer in **one** TLS write
/// (each is exactly one message: spec rule T9), arms a timer at
/// [`poll_timeout`](Self::poll_timeout) and calls [`handle_timeout`](Self::handle_timeout) when
/// it fires, and answers the [`poll_event`](Self::poll_event)s with explicit calls
/// ([`decide`](Self::decide), [`deliver_certificate`](Self::deliver_certificate), ...). When
/// [`is_closed`](Self::is_closed) is true and no transmit is left, it closes the connection.
#[derive(Debug)]
pub struct ServerSession {
    deframer: Deframer,

    core: Core<Server>,
}

/// The server's own data in the shared [`Core`].
#[derive(Debug)]
struct Server {
    config: ServerConfig,
    session_id: u32,
    version: Option<u8>,
    /// The first bytes of the message last read or being read, for logs (spec 9.3).
    head: MessageHead,
}

impl Role for Server {
    type Expect = Expect;
    type Event = ServerEvent;
    const CLOSED: Expect = Expect::Closed;
    const TIMEOUT_END_SESSION: Option<Reason> = Some(Reason::INVALID_ELEMENT);

    fn state(expect: &Expect) -> State {
        expect.state()
    }

    fn closed_event(outcome: Outcome) -> ServerEvent {
        ServerEvent::Closed { outcome }
    }

    fn session_id(&self) -> u32 {
        self.session_id
    }
}

/// At most [`MESSAGE_HEAD_LEN`] leading bytes of a message.
#[derive(Debug, Default)]
struct MessageHead {
    bytes: [u8; MESSAGE_HEAD_LEN],
    len: usize,
    /// Holds a whole message already handled: the next bytes start a new one.
    complete: bool,
}

impl MessageHead {
    /// Bytes of the message being read.
    fn push(&mut self, more: &[u8]) {
        if self.complete {
            self.len = 0;
            self.complete = false;
        }
        self.extend(more);
    }

    /// The message just read, whole.
    fn set(&mut self, frame: &Frame<'_>) {
        let mut header = [0u8; capf_wire::HEADER_LEN];
        header[0] = capf_wire::PROTOCOL_ID;
        header[1] = frame.header.command.0;
        header[2..6].copy_from_slice(&frame.header.session_id.to_be_bytes());
        header[6..].copy_from_slice(&frame.header.length.to_be_bytes());
        self.len = 0;
        self.extend(&header);
        self.extend(frame.body);
        self.complete = true;
    }

    fn extend(&mut self, more: &[u8]) {
        let take = more.len().min(MESSAGE_HEAD_LEN - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&more[..take]);
        self.len += take;
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl ServerSession {
    shared_session_calls!(ServerEvent);

    /// A session for a connection whose TLS handshake has just finished: AUTH_REQUEST (VERSION 3,
    /// AUTH_TYPE from the config) is queued at once (the server speaks first, spec T6).
    ///
    /// `session_id` is the caller's: pick a fresh random non-zero u32 per connection (spec 2.3
    /// project rule; a counter makes recorded SUDI signatures replayable).
    pub fn new(config: ServerConfig, session_id: u32, now: Instant) -> Self {
        let mut request = AuthRequest::new(SERVER_VERSION);
        if let Some(auth_type) = config.auth_type {
            request = request.with_auth_type(auth_type);
        }
        let deadline = deadline_after(now, config.timeouts.message);
        let deframer = Deframer::new(config.strictness);
        let server = Server {
            config,
            session_id,
            version: None,
            head: MessageHead::default(),
        };
        let mut core = Core::new(server, Expect::Auth, deadline);
        core.send(request);
        ServerSession { deframer, core }
    }

    /// The session id.
    pub fn session_id(&self) -> u32 {
        self.core.role.session_id
    }

    /// The VERSION the phone sent, once an acceptable AUTH_RESPONSE has arrived.
    pub fn version(&self) -> Option<u8> {
        self.core.role.version
    }

    /// Feeds bytes read from the connection, split anywhere. Bytes after the session's end are
    /// ignored.
    pub fn handle_input(&mut self, now: Instant, mut input: &[u8]) {
        while !input.is_empty() && !self.is_closed() {
            match self.deframer.push(input) {
                Err(e) => {
                    // The header that failed is at the start of what was not yet consumed.
                    self.core.role.head.push(input);
                    self.core.decode_failed(e);
                    return;
                }
                Ok((used, None)) => {
                    self.core.role.head.push(&input[..used]);
                    input = &input[used..];
                }
                Ok((used, Some(frame))) => {
                    input = &input[used..];
                    self.core.role.head.set(&frame);
                    self.core.on_frame(now, &frame);
                    self.deframer.reclaim();
                }
            }
        }
    }

    /// The first bytes (at most [`MESSAGE_HEAD_LEN`]) of the message last read, or being read
    /// when the session failed: what spec 9.3 asks a server to log when it closes on a bad
    /// message.
    pub fn message_head(&self) -> &[u8] {
        self.core.role.head.as_slice()
    }

    /// Answers [`ServerEvent::Authenticate`] (spec 7 steps 4-6).
    ///
    /// A client below version 3 (Jabber sends 2) only understands KEY_SIZE-only requests
    /// (spec 8.11): `Install(KeyRequest::Rsa(bits))` is sent to it as
    /// `KeyRequest::RsaKeySizeOnly(bits)`, the same key in the form it reads, while
    /// `Install(KeyRequest::Ec(_))` is refused with [`Error::EcKeyNeedsVersion3`] and the session
    /// keeps waiting for another decision (a different key type than the administrator ordered is
    /// never substituted silently).
    pub fn decide(&mut self, now: Instant, decision: Decision) -> Result<(), Error> {
        let Expect::Decision { version } = self.core.state else {
            return Err(self.wrong_state("decide"));
        };
        let c = &mut self.core;
        match decision {
            Decision::UnknownDevice => c.finish(Reason::UNKNOWN_DEVICE),
            Decision::AuthenticationFailed => c.finish(Reason::INVALID_ELEMENT),
            Decision::NoPendingOperation => c.finish(Reason::NO_ACTION),
            Decision::Refuse(reason) => c.finish(reason),
            Decision::RetryLater { delay_secs } => c.retry_later(delay_secs)?,
            Decision::Install(key) => {
                let key = key_request_for_version(key, version)?;
                c.send(key.to_message());
                c.wait(Expect::Key { in_progress: 0 }, now, true);
            }
            Decision::Fetch => {
                c.send(FetchCertificateRequest::new());
                c.wait(Expect::Fetch, now, false);
            }
            Decision::Delete => {
                c.send(DeleteCertificateRequest::new());
                c.wait(Expect::Delete, now, false);
            }
        }
        Ok(())
    }

    /// Answers [`ServerEvent::PublicKey`] or [`ServerEvent::CsrSigned`] with the issued LSC
    /// (DER): STORE_CERT_REQUEST with CERTIFICATE_TYPE 1 and CERTIFICATE. Keep the LSC as issued
    /// but unconfirmed until [`ServerEvent::CertificateStored`]. On error (a certificate too
    /// large for one message) the session still waits for a certificate or
    /// [`issuance_failed`](Self::issuance_failed).
    pub fn deliver_certificate(&mut self, now: Instant, der: &[u8]) -> Result<(), Error> {
        if !matches!(self.core.state, Expect::Certificate | Expect::CaCertificate) {
            return Err(self.wrong_state("deliver_certificate"));
        }
        let request = capf_wire::CertificateValue::lsc(der)
            .and_then(StoreCertificateRequest::new)
            .map_err(|source| Error::Encode {
                command: StoreCertificateRequest::COMMAND,
                source,
            })?;
        self.core.send(request);
        self.core.wait(Expect::Store, now, false);
        Ok(())
    }

    /// Answers [`ServerEvent::PublicKey`] with SIGN_CERT_REQUEST carrying `csr_info_der`, the
    /// DER CertificationRequestInfo for the phone's key (spec 16): the phone signs it, and
    /// [`ServerEvent::CsrSigned`] or [`ServerEvent::CsrSigningFailed`] follows (30 s deadline, as
    /// every wait on the phone). A phone that answers anything else ends the session with
    /// END_SESSION 7; [`Outcome::unexpected_in`]`(State::WaitCsrSignature)` names what it sent.
    /// On error (empty, or too large for one message) nothing changes.
    pub fn request_csr_signature(
        &mut self,
        now: Instant,
        csr_info_der: &[u8],
    ) -> Result<(), Error> {
        if !matches!(self.core.state, Expect::Certificate) {
            return Err(self.wrong_state("request_csr_signature"));
        }
        let info = CsrInfo::new(csr_info_der).map_err(|source| Error::Encode {
            command: SignCertRequest::COMMAND,
            source,
        })?;
        self.core.send(SignCertRequest::new(info));
        self.core.wait(Expect::CsrSignature, now, false);
        Ok(())
    }

    /// Answers [`ServerEvent::CsrSigned`] when the CA has not issued the LSC yet: RETRY_LATER
    /// with `delay_secs` (1-604800), then END_SESSION 1; the session ends as
    /// [`Outcome::Ended`] with REASON 1 (spec 16.x). On error (a delay out of range) nothing
    /// changes.
    pub fn retry_later(&mut self, _now: Instant, delay_secs: u32) -> Result<(), Error> {
        if !matches!(self.core.state, Expect::CaCertificate) {
            return Err(self.wrong_state("retry_later"));
        }
        self.core.retry_later(delay_secs)
    }

    /// Answers [`ServerEvent::PublicKey`] or [`ServerEvent::CsrSigned`] when no LSC can be
    /// issued (bad key, bad CSR signature, issuer failure): END_SESSION 7.
    pub fn issuance_failed(&mut self) -> Result<(), Error> {
        if !matches!(self.core.state, Expect::Certificate | Expect::CaCertificate) {
            return Err(self.wrong_state("issuance_failed"));
        }
        self.core.finish(Reason::INVALID_ELEMENT);
        Ok(())
    }

    /// Ends the session now with END_SESSION `reason`, whatever it was doing (shutdown, the
    /// application's own deadline for a decision or an issuance).
    pub fn abort(&mut self, reason: Reason) -> Result<(), Error> {
        if self.is_closed() {
            return Err(self.wrong_state("abort"));
        }
        self.core.end(
            reason,
            Outcome::Aborted {
                end_session: Some(reason),
            },
        );
        Ok(())
    }

    fn wrong_state(&self, call: &'static str) -> Error {
        self.core.wrong_state(call)
    }
}

impl Core<Server> {
    fn wait(&mut self, next: Expect, now: Instant, key_generation: bool) {
        let timeouts = self.role.config.timeouts;
        let wait = if key_generation {
            timeouts.key_generation
        } else {
            timeouts.message
        };
        self.wait_until(next, deadline_after(now, wait));
    }

    /// The normal end of a session.
    fn finish(&mut self, reason: Reason) {
        self.end(reason, Outcome::Ended { reason });
    }

    /// RETRY_LATER, then END_SESSION 1 (spec 16); a delay out of range changes nothing.
    fn retry_later(&mut self, delay_secs: u32) -> Result<(), Error> {
        let delay = RetryDelay::new(delay_secs).map_err(|source| Error::Encode {
            command: RetryLater::COMMAND,
            source,
        })?;
        self.send(RetryLater::new(delay));
        self.finish(Reason::UPDATE_CERTIFICATE);
        Ok(())
    }

    fn fail(&mut self, error: Error) {
        // Every protocol error with intact framing gets END_SESSION 7 (spec 9.3).
        let reason = Reason::INVALID_ELEMENT;
        self.end(
            reason,
            Outcome::ProtocolError {
                error,
                end_session: Some(reason),
            },
        );
    }

    fn decode_failed(&mut self, e: capf_wire::Error) {
        match e.server_action(self.role.config.error_policy) {
            ServerAction::EndSession(reason) => self.end(
                reason,
                Outcome::ProtocolError {
                    error: Error::Decode(e),
                    end_session: Some(reason),
                },
            ),
            ServerAction::Close => self.close(Outcome::ProtocolError {
                error: Error::Decode(e),
                end_session: None,
            }),
        }
    }

    fn on_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        if frame.header.session_id != self.role.session_id {
            return self.fail(Error::SessionIdMismatch {
                expected: self.role.session_id,
                found: frame.header.session_id,
            });
        }
        let message = match Message::from_frame(frame) {
            Ok(m) => m,
            Err(e) => return self.decode_failed(e),
        };
        match (
            mem::replace(&mut self.state, Expect::Closed),
            message.payload,
        ) {
            (Expect::Auth, Payload::AuthResponse(auth)) => self.on_auth_response(&auth),
            (Expect::Key { in_progress }, Payload::RequestInProgress(_)) => {
                let count = in_progress.saturating_add(1);
                if count > self.role.config.max_requests_in_progress {
                    return self.fail(Error::TooManyRequestsInProgress {
                        limit: self.role.config.max_requests_in_progress,
                    });
                }
                // Each one restarts the key-generation deadline (spec 8.2 project rule).
                self.wait(Expect::Key { in_progress: count }, now, true);
                self.events
                    .push_back(ServerEvent::KeyGenerationInProgress { count });
            }
            (Expect::Key { .. }, Payload::KeyGenResponse(r)) => self.on_key_gen_response(&r),
            (Expect::CsrSignature, Payload::SignCertResponse(r)) => self.on_sign_cert_response(&r),
            (Expect::Store, Payload::StoreCertificateResponse(r)) => {
                let reason = r.reason();
                self.events
                    .push_back(if reason == Reason::UPDATE_CERTIFICATE {
                        ServerEvent::CertificateStored
                    } else {
                        ServerEvent::StoreFailed { reason }
                    });
                // capfd sends 1 whatever the phone reported (spec 8.2 step 8).
                self.finish(Reason::UPDATE_CERTIFICATE);
            }
            (Expect::Fetch, Payload::FetchCertificateResponse(r)) => {
                self.events.push_back(ServerEvent::Fetched {
                    reason: r.reason(),
                    certificate: r.certificate().map(Certificate::from_value),
                });
                self.finish(Reason::NO_ACTION);
            }
            (Expect::Delete, Payload::DeleteCertificateResponse(r)) => {
                self.events
                    .push_back(ServerEvent::Deleted { reason: r.reason() });
                self.finish(Reason::UPDATE_CERTIFICATE);
            }
            (state, payload) => {
                // Wrong order, a named-only command, or anything while the application decides.
                let error = Error::UnexpectedMessage {
                    command: payload.command(),
                    state: state.state(),
                };
                self.fail(error);
            }
        }
    }

    fn on_auth_response(&mut self, auth: &AuthResponse<'_>) {
        // Spec 5.3 project rule: 1-3 accepted; absent or other is refused before the
        // application is asked anything (spec 7 step 2).
        let version = match auth.version() {
            Some(v @ 1..=3) => v,
            version => return self.fail(Error::UnsupportedVersion { version }),
        };
        // A name no device can have is refused as an unknown device (END_SESSION 9) before the
        // application is asked: it is validated once, here.
        let auth = match Authentication::from_message(self.role.session_id, version, auth) {
            Ok(auth) => auth,
            Err(e) => return self.decode_failed(e),
        };
        self.role.version = Some(version);
        // The application owns this wait (database, throttling): no session deadline.
        self.hand_over(
            Expect::Decision { version },
            ServerEvent::Authenticate(Box::new(auth)),
        );
    }

    fn on_sign_cert_response(&mut self, r: &SignCertResponse<'_>) {
        let signature = r.csr_signature().map(capf_wire::CsrSignature::as_bytes);
        match csr_answer(r.reason(), signature) {
            // The CA's answer is the application's wait.
            Ok(CsrAnswer::Signed(signature)) => self.hand_over(
                Expect::CaCertificate,
                ServerEvent::CsrSigned {
                    signature: signature.to_vec(),
                },
            ),
            Ok(CsrAnswer::Failed(reason)) => {
                self.events
                    .push_back(ServerEvent::CsrSigningFailed { reason });
                self.finish(Reason::INVALID_ELEMENT);
            }
            Err(e) => self.fail(e),
        }
    }

    fn on_key_gen_response(&mut self, r: &KeyGenResponse<'_>) {
        match r.public_key() {
            // Issuance is the application's wait.
            Some(spki) => self.hand_over(
                Expect::Certificate,
                ServerEvent::PublicKey {
                    spki_der: spki.to_vec(),
                },
            ),
            None => {
                self.events
                    .push_back(ServerEvent::KeyGenerationFailed { reason: r.reason() });
                self.finish(Reason::INVALID_ELEMENT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capf_wire::{Curve, KeyRequest, RequestInProgress, StoreCertificateResponse};
    use std::time::Duration;

    const ID: u32 = 0x0001_2345;

    fn auth_response(version: Option<u8>) -> Vec<u8> {
        let m = AuthResponse::new("SEP001A2B3C4D5E", version.unwrap_or(3)).unwrap();
        let mut bytes = Message::new(ID, m).to_bytes();
        if version.is_none() {
            // Drop VERSION (REASON, VERSION, DEVICE_NAME: VERSION is bytes 12..16).
            bytes.drain(12..16);
            bytes[7] -= 4;
        }
        bytes
    }

    fn started() -> (ServerSession, Instant) {
        let now = Instant::now();
        let mut s = ServerSession::new(ServerConfig::default(), ID, now);
        assert_eq!(
            s.poll_transmit().unwrap(),
            hex("55010001234500080700010308000100")
        );
        (s, now)
    }

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn closed_outcome(s: &mut ServerSession) -> Outcome {
        let mut last = None;
        while let Some(e) = s.poll_event() {
            last = Some(e);
        }
        match last {
            Some(ServerEvent::Closed { outcome }) => outcome,
            other => panic!("no Closed event: {other:?}"),
        }
    }

    #[test]
    fn sends_auth_request_without_auth_type_when_configured_like_ucm() {
        let config = ServerConfig {
            auth_type: None,
            ..ServerConfig::default()
        };
        let mut s = ServerSession::new(config, ID, Instant::now());
        assert_eq!(s.poll_transmit().unwrap(), hex("550100012345000407000103"));
    }

    #[test]
    fn rejects_absent_and_out_of_range_versions_without_asking_the_application() {
        for version in [None, Some(0), Some(4)] {
            let (mut s, now) = started();
            s.handle_input(now, &auth_response(version));
            assert_eq!(s.poll_transmit().unwrap(), hex("550f00012345000401000107"));
            let outcome = closed_outcome(&mut s);
            let expected_version = version;
            assert_eq!(
                outcome,
                Outcome::ProtocolError {
                    error: Error::UnsupportedVersion {
                        version: expected_version
                    },
                    end_session: Some(Reason::INVALID_ELEMENT)
                }
            );
        }
    }

    #[test]
    fn version_2_client_gets_key_size_only_rsa_and_cannot_be_asked_for_ec() {
        let (mut s, now) = started();
        s.handle_input(now, &auth_response(Some(2)));
        let Some(ServerEvent::Authenticate(auth)) = s.poll_event() else {
            panic!("no Authenticate event")
        };
        assert_eq!(auth.version, 2);
        assert!(!auth.can_request_ec());
        assert_eq!(
            s.decide(now, Decision::Install(KeyRequest::Ec(Curve::SECP256R1))),
            Err(Error::EcKeyNeedsVersion3 { version: 2 })
        );
        assert_eq!(s.state(), State::AwaitingDecision);
        s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
            .unwrap();
        assert_eq!(
            s.poll_transmit().unwrap(),
            hex("55030001234500050a00020800")
        );
    }

    #[test]
    fn request_in_progress_restarts_the_key_generation_deadline() {
        let (mut s, now) = started();
        s.handle_input(now, &auth_response(Some(3)));
        s.poll_event();
        s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(3600)));
        let later = now + Duration::from_secs(50 * 60);
        s.handle_input(
            later,
            &Message::new(ID, RequestInProgress::new()).to_bytes(),
        );
        assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(3600)));
        assert_eq!(
            s.poll_event(),
            Some(ServerEvent::KeyGenerationInProgress { count: 1 })
        );
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_means_no_deadline_not_a_panic() {
        // RELIABILITY.md item 10: u64::MAX seconds once panicked "overflow when adding
        // duration to instant" on every connection.
        let now = Instant::now();
        let mut config = ServerConfig::default();
        config.timeouts.message = Duration::from_secs(u64::MAX);
        config.timeouts.key_generation = Duration::MAX;
        let mut s = ServerSession::new(config, ID, now);
        assert_eq!(s.poll_timeout(), None);
        s.handle_input(now, &auth_response(Some(3)));
        assert!(matches!(s.poll_event(), Some(ServerEvent::Authenticate(_))));
        s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
            .unwrap();
        assert_eq!(s.state(), State::WaitKey);
        assert_eq!(s.poll_timeout(), None);
        s.handle_input(now, &Message::new(ID, RequestInProgress::new()).to_bytes());
        assert_eq!(s.poll_timeout(), None);
        s.handle_timeout(now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(s.state(), State::WaitKey);
    }

    #[test]
    fn store_failure_still_ends_with_reason_1() {
        let (mut s, now) = started();
        s.handle_input(now, &auth_response(Some(3)));
        s.poll_event();
        s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
            .unwrap();
        s.handle_input(
            now,
            &Message::new(ID, KeyGenResponse::with_public_key(vec![0x30, 0]).unwrap()).to_bytes(),
        );
        assert_eq!(
            s.poll_event(),
            Some(ServerEvent::PublicKey {
                spki_der: vec![0x30, 0]
            })
        );
        assert_eq!(s.poll_timeout(), None, "issuance is the application's wait");
        s.deliver_certificate(now, &[0x30, 0x00]).unwrap();
        s.poll_transmit();
        s.poll_transmit();
        s.handle_input(
            now,
            &Message::new(ID, StoreCertificateResponse::new(Reason::INVALID_ELEMENT)).to_bytes(),
        );
        assert_eq!(
            s.poll_event(),
            Some(ServerEvent::StoreFailed {
                reason: Reason::INVALID_ELEMENT
            })
        );
        assert_eq!(s.poll_transmit().unwrap(), hex("550f00012345000401000101"));
        assert_eq!(
            closed_outcome(&mut s),
            Outcome::Ended {
                reason: Reason::UPDATE_CERTIFICATE
            }
        );
    }

    #[test]
    fn message_head_shows_the_bad_message_not_the_previous_one() {
        let (mut s, now) = started();
        s.handle_input(now, &auth_response(Some(3)));
        assert_eq!(s.message_head(), &auth_response(Some(3))[..32]);
        s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
            .unwrap();
        let oversized = hex("55110001234540000000");
        s.handle_input(now, &oversized[..3]);
        s.handle_input(now, &oversized[3..]);
        assert!(s.is_closed());
        assert_eq!(s.message_head(), &oversized[..]);
    }

    #[test]
    fn a_device_name_no_device_can_have_is_an_unknown_device() {
        let (mut s, now) = started();
        let m = AuthResponse::new("SEP 1", 3).unwrap();
        s.handle_input(now, &Message::new(ID, m).to_bytes());
        assert_eq!(s.poll_transmit().unwrap(), hex("550f00012345000401000109"));
        assert!(matches!(
            closed_outcome(&mut s),
            Outcome::ProtocolError {
                error: Error::Decode(capf_wire::Error::InvalidDeviceName { .. }),
                end_session: Some(Reason::UNKNOWN_DEVICE)
            }
        ));
    }

    #[test]
    fn calls_in_the_wrong_state_are_refused_and_change_nothing() {
        let (mut s, now) = started();
        assert_eq!(
            s.deliver_certificate(now, &[0x30, 0]),
            Err(Error::WrongState {
                call: "deliver_certificate",
                state: State::WaitAuth
            })
        );
        assert_eq!(
            s.decide(now, Decision::Fetch).unwrap_err(),
            Error::WrongState {
                call: "decide",
                state: State::WaitAuth
            }
        );
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.state(), State::WaitAuth);
    }

    #[test]
    fn abort_sends_end_session_with_the_given_reason() {
        let (mut s, _) = started();
        s.abort(Reason::INVALID_ELEMENT).unwrap();
        assert_eq!(s.poll_transmit().unwrap(), hex("550f00012345000401000107"));
        assert!(s.is_closed());
        assert!(s.abort(Reason::INVALID_ELEMENT).is_err());
    }
}
