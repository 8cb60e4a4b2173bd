//! The phone side of a CAPF session: the mirror image of the server (spec sections 8, 9.3, 11).

use std::mem;
use std::time::{Duration, Instant};

use capf_wire::{
    AuthResponse, AuthType, CsrSignature, Deframer, DeleteCertificateResponse,
    FetchCertificateResponse, Frame, KeyGenResponse, Message, Payload, Reason, RequestInProgress,
    SignCertResponse, StoreCertificateResponse, Strictness,
};

use crate::core::{Core, Role, deadline_after, shared_session_calls};
use crate::error::{Error, Outcome, State};
use crate::types::{Certificate, csr_answer, read_key_request};

/// The highest VERSION a phone session answers with (spec 5.3: the phone echoes
/// min(server, 3)).
pub const PHONE_VERSION: u8 = 3;

/// How a [`PhoneSession`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneConfig {
    /// How long to wait for each server message (AUTH_REQUEST after the handshake, then the
    /// server's next step): 30 s by default. Waits on the application have no deadline.
    pub message_timeout: Duration,
    /// Send REQUEST_IN_PROGRESS on KEY_GEN_REQUEST before generating, as real phones and capfc
    /// do (spec 8.2; Jabber does not). On by default.
    pub send_request_in_progress: bool,
    /// How strictly the server's messages are decoded.
    pub strictness: Strictness,
    /// Take part in the endpoint-CSR extension (spec 16): sign CSR_INFO on SIGN_CERT_REQUEST
    /// and honour RETRY_LATER. On by default; off, both are unexpected commands and the phone
    /// closes without a word (spec 9.3), as a phone without CSR support does.
    pub endpoint_csr: bool,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            message_timeout: Duration::from_secs(30),
            send_request_in_progress: true,
            strictness: Strictness::Strict,
            endpoint_csr: true,
        }
    }
}

/// What a [`PhoneSession`] reports to its application. The last event is always
/// [`PhoneEvent::Closed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PhoneEvent {
    /// AUTH_REQUEST arrived: build the AUTH_RESPONSE (device name, `version`, and the proof the
    /// phone's authentication mode calls for) and pass it to
    /// [`PhoneSession::send_auth_response`]. For certificate authentication with SUDI the
    /// signatures cover `session_id` (little-endian, spec 6.4): the session holds no keys, so
    /// the application signs.
    AuthRequested {
        /// The session id the server assigned (adopted for every later message).
        session_id: u32,
        /// The VERSION to answer with: min(server's, 3).
        version: u8,
        /// The VERSION the server offered.
        server_version: u8,
        /// AUTH_TYPE, if the server sent one (phones ignore it: spec 5.2).
        auth_type: Option<AuthType>,
    },
    /// KEY_GEN_REQUEST: generate this key, then call [`PhoneSession::send_public_key`] or
    /// [`PhoneSession::key_generation_failed`]. REQUEST_IN_PROGRESS is already queued (if
    /// configured). [`crate::KeyRequest::RsaKeySizeOnly`] (no KEY_TYPE) means RSA too (spec 5.4).
    KeyGenerationRequested {
        /// The key asked for.
        key: capf_wire::KeyRequest,
    },
    /// STORE_CERT_REQUEST: check that the certificate is for the key just generated, store it,
    /// and call [`PhoneSession::store_result`].
    CertificateReceived {
        /// The LSC.
        certificate: Certificate,
    },
    /// SIGN_CERT_REQUEST (spec 16): sign `csr_info_der` with the key just generated
    /// (RSA: PKCS#1 v1.5 with SHA-256; EC: DER ECDSA with SHA-256) and call
    /// [`PhoneSession::send_csr_signature`], or [`PhoneSession::csr_signing_failed`].
    CsrSignatureRequested {
        /// CSR_INFO: the DER CertificationRequestInfo to sign, as received.
        csr_info_der: Vec<u8>,
    },
    /// RETRY_LATER (spec 16): the certificate is not ready; keep the key just generated (if
    /// any) and connect again after `delay_secs`. END_SESSION follows.
    RetryLater {
        /// RETRY_DELAY in seconds (1-604800).
        delay_secs: u32,
    },
    /// FETCH_CERT_REQUEST (Troubleshoot): call [`PhoneSession::send_certificate`].
    FetchRequested,
    /// DELETE_CERT_REQUEST: delete the LSC and call [`PhoneSession::delete_result`].
    DeleteRequested,
    /// The session is over: [`Outcome::Ended`] carries the END_SESSION REASON received.
    Closed {
        /// Why.
        outcome: Outcome,
    },
}

/// The phone's states (spec 11), transitions consume them.
#[derive(Debug)]
enum Expect {
    AuthRequest,
    AuthResponse,
    Operation,
    Key,
    Certificate,
    Csr,
    SignedCertificate,
    Store,
    Fetch,
    Delete,
    End,
    Closed,
}

impl Expect {
    fn state(&self) -> State {
        match self {
            Expect::AuthRequest => State::WaitAuthRequest,
            Expect::AuthResponse => State::AwaitingAuthResponse,
            Expect::Operation => State::WaitOperation,
            Expect::Key => State::GeneratingKey,
            Expect::Certificate => State::WaitCertificate,
            Expect::Csr => State::SigningCsr,
            Expect::SignedCertificate => State::WaitSignedCertificate,
            Expect::Store => State::StoringCertificate,
            Expect::Fetch => State::FetchingCertificate,
            Expect::Delete => State::DeletingCertificate,
            Expect::End => State::WaitEnd,
            Expect::Closed => State::Closed,
        }
    }
}

/// One CAPF session, phone side, without I/O; driven like [`crate::ServerSession`].
///
/// Any anomaly from the server (bad bytes, wrong session id, unexpected command) closes the
/// session without sending anything, as the spec's phone column says (spec 9.3).
#[derive(Debug)]
pub struct PhoneSession {
    deframer: Deframer,
    core: Core<Phone>,
}

/// The phone's own data in the shared [`Core`].
#[derive(Debug)]
struct Phone {
    config: PhoneConfig,
    session_id: Option<u32>,
}

impl Role for Phone {
    type Expect = Expect;
    type Event = PhoneEvent;
    const CLOSED: Expect = Expect::Closed;
    const TIMEOUT_END_SESSION: Option<Reason> = None;

    fn state(expect: &Expect) -> State {
        expect.state()
    }

    fn closed_event(outcome: Outcome) -> PhoneEvent {
        PhoneEvent::Closed { outcome }
    }

    fn session_id(&self) -> u32 {
        // Only needed after AUTH_REQUEST fixed the id: every sending call checks its state.
        self.session_id.unwrap_or_default()
    }
}

impl PhoneSession {
    shared_session_calls!(PhoneEvent);

    /// A session for a connection whose TLS handshake has just finished; the phone waits for
    /// AUTH_REQUEST (the server speaks first, spec T6).
    pub fn new(config: PhoneConfig, now: Instant) -> Self {
        let deadline = deadline_after(now, config.message_timeout);
        let deframer = Deframer::new(config.strictness);
        let phone = Phone {
            config,
            session_id: None,
        };
        PhoneSession {
            deframer,
            core: Core::new(phone, Expect::AuthRequest, deadline),
        }
    }

    /// The session id, once AUTH_REQUEST has fixed it.
    pub fn session_id(&self) -> Option<u32> {
        self.core.role.session_id
    }

    /// Feeds bytes read from the connection, split anywhere.
    pub fn handle_input(&mut self, now: Instant, mut input: &[u8]) {
        while !input.is_empty() && !self.is_closed() {
            match self.deframer.push(input) {
                Err(e) => return self.core.fail(Error::Decode(e)),
                Ok((used, frame)) => {
                    input = &input[used..];
                    if let Some(frame) = frame {
                        self.core.on_frame(now, &frame);
                        self.deframer.reclaim();
                    }
                }
            }
        }
    }

    /// Answers [`PhoneEvent::AuthRequested`] with the AUTH_RESPONSE the application built
    /// (`capf_wire::AuthResponse::new(name, version)` plus its proof).
    pub fn send_auth_response(
        &mut self,
        now: Instant,
        response: AuthResponse<'_>,
    ) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::AuthResponse), "send_auth_response")?;
        self.core.send(response);
        self.core.wait(Expect::Operation, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::KeyGenerationRequested`] with the new public key (DER
    /// SubjectPublicKeyInfo): KEY_GEN_RESPONSE with PUBLIC_KEY.
    pub fn send_public_key(&mut self, now: Instant, spki_der: &[u8]) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Key), "send_public_key")?;
        let response =
            KeyGenResponse::with_public_key(spki_der).map_err(|source| Error::Encode {
                command: KeyGenResponse::COMMAND,
                source,
            })?;
        self.core.send(response);
        self.core.wait(Expect::Certificate, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::KeyGenerationRequested`] when the key cannot be made:
    /// KEY_GEN_RESPONSE with REASON only (spec 8.8); the server then ends the session.
    pub fn key_generation_failed(&mut self, now: Instant, reason: Reason) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Key), "key_generation_failed")?;
        self.core.send(KeyGenResponse::failure(reason));
        self.core.wait(Expect::End, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::CsrSignatureRequested`] with the signature over CSR_INFO:
    /// SIGN_CERT_RESPONSE with REASON 1 and CSR_SIGNATURE (1-1024 bytes); the phone then waits
    /// for STORE_CERT_REQUEST, RETRY_LATER or END_SESSION (spec 16).
    pub fn send_csr_signature(&mut self, now: Instant, signature: &[u8]) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Csr), "send_csr_signature")?;
        let response = CsrSignature::new(signature)
            .and_then(SignCertResponse::signed)
            .map_err(|source| Error::Encode {
                command: SignCertResponse::COMMAND,
                source,
            })?;
        self.core.send(response);
        self.core.wait(Expect::SignedCertificate, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::CsrSignatureRequested`] when the phone cannot sign:
    /// SIGN_CERT_RESPONSE with `reason` alone (any REASON but 1, which
    /// [`Error::MissingCsrSignature`] refuses); the server then ends the session (spec 16).
    pub fn csr_signing_failed(&mut self, now: Instant, reason: Reason) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Csr), "csr_signing_failed")?;
        csr_answer(reason, None)?;
        self.core.send(SignCertResponse::failure(reason));
        self.core.wait(Expect::End, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::CertificateReceived`]: STORE_CERT_RESPONSE REASON 1 if the LSC
    /// matched the key and was stored, 7 otherwise.
    pub fn store_result(&mut self, now: Instant, stored: bool) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Store), "store_result")?;
        self.core
            .send(StoreCertificateResponse::new(success_reason(stored)));
        self.core.wait(Expect::End, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::FetchRequested`]: FETCH_CERT_RESPONSE REASON 1 with the
    /// certificate, or REASON 7 alone when there is none (spec 8.4).
    pub fn send_certificate(
        &mut self,
        now: Instant,
        certificate: Option<&Certificate>,
    ) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Fetch), "send_certificate")?;
        let encode = |source| Error::Encode {
            command: FetchCertificateResponse::COMMAND,
            source,
        };
        match certificate {
            Some(c) => {
                let value = c.to_value().map_err(encode)?;
                let response = FetchCertificateResponse::found(value).map_err(encode)?;
                self.core.send(response);
            }
            None => self
                .core
                .send(FetchCertificateResponse::not_found(Reason::INVALID_ELEMENT)),
        }
        self.core.wait(Expect::End, now);
        Ok(())
    }

    /// Answers [`PhoneEvent::DeleteRequested`]: DELETE_CERT_RESPONSE REASON 1 if an LSC was
    /// deleted, 7 if there was nothing to delete.
    pub fn delete_result(&mut self, now: Instant, deleted: bool) -> Result<(), Error> {
        self.require_state(|e| matches!(e, Expect::Delete), "delete_result")?;
        self.core
            .send(DeleteCertificateResponse::new(success_reason(deleted)));
        self.core.wait(Expect::End, now);
        Ok(())
    }

    /// Gives up: the phone just closes (no phone-to-server abort message exists, spec 8.12).
    pub fn abort(&mut self) -> Result<(), Error> {
        if self.is_closed() {
            return Err(self.core.wrong_state("abort"));
        }
        self.core.close(Outcome::Aborted { end_session: None });
        Ok(())
    }

    fn require_state(&self, ok: impl Fn(&Expect) -> bool, call: &'static str) -> Result<(), Error> {
        if ok(&self.core.state) {
            Ok(())
        } else {
            Err(self.core.wrong_state(call))
        }
    }
}

fn success_reason(ok: bool) -> Reason {
    if ok {
        Reason::UPDATE_CERTIFICATE
    } else {
        Reason::INVALID_ELEMENT
    }
}

impl Core<Phone> {
    fn wait(&mut self, next: Expect, now: Instant) {
        let deadline = deadline_after(now, self.role.config.message_timeout);
        self.wait_until(next, deadline);
    }

    /// Any anomaly: close without sending anything (spec 9.3, phone column).
    fn fail(&mut self, error: Error) {
        self.close(Outcome::ProtocolError {
            error,
            end_session: None,
        });
    }

    fn on_frame(&mut self, now: Instant, frame: &Frame<'_>) {
        let found = frame.header.session_id;
        match self.role.session_id {
            // Adopted from AUTH_REQUEST below; the phone accepts any value (spec 2.3).
            None => {}
            Some(expected) if expected != found => {
                return self.fail(Error::SessionIdMismatch { expected, found });
            }
            Some(_) => {}
        }
        let message = match Message::from_frame(frame) {
            Ok(m) => m,
            Err(e) => return self.fail(Error::Decode(e)),
        };
        match (
            mem::replace(&mut self.state, Expect::Closed),
            message.payload,
        ) {
            (Expect::AuthRequest, Payload::AuthRequest(request)) => {
                self.role.session_id = Some(found);
                let server_version = request.version();
                self.hand_over(
                    Expect::AuthResponse,
                    PhoneEvent::AuthRequested {
                        session_id: found,
                        version: server_version.min(PHONE_VERSION),
                        server_version,
                        auth_type: request.auth_type(),
                    },
                );
            }
            (state, Payload::EndSession(end)) if !matches!(state, Expect::AuthRequest) => {
                let reason = end.reason();
                self.close(Outcome::Ended { reason });
            }
            (Expect::Operation, Payload::KeyGenRequest(request)) => {
                match read_key_request(&request) {
                    Ok(key) => {
                        if self.role.config.send_request_in_progress {
                            self.send(RequestInProgress::new());
                        }
                        self.hand_over(Expect::Key, PhoneEvent::KeyGenerationRequested { key });
                    }
                    Err(e) => self.fail(e),
                }
            }
            (Expect::Operation, Payload::FetchCertificateRequest(_)) => {
                self.hand_over(Expect::Fetch, PhoneEvent::FetchRequested);
            }
            (Expect::Operation, Payload::DeleteCertificateRequest(_)) => {
                self.hand_over(Expect::Delete, PhoneEvent::DeleteRequested);
            }
            (Expect::Certificate, Payload::SignCertRequest(request))
                if self.role.config.endpoint_csr =>
            {
                let csr_info_der = request.csr_info().as_bytes().to_vec();
                self.hand_over(
                    Expect::Csr,
                    PhoneEvent::CsrSignatureRequested { csr_info_der },
                );
            }
            (Expect::Operation | Expect::SignedCertificate, Payload::RetryLater(retry))
                if self.role.config.endpoint_csr =>
            {
                // END_SESSION follows (spec 16): wait for it as for any server message.
                let delay_secs = retry.retry_delay().seconds();
                self.events.push_back(PhoneEvent::RetryLater { delay_secs });
                self.wait(Expect::End, now);
            }
            (
                Expect::Certificate | Expect::SignedCertificate,
                Payload::StoreCertificateRequest(request),
            ) => {
                let certificate = Certificate::from_value(request.certificate());
                self.hand_over(
                    Expect::Store,
                    PhoneEvent::CertificateReceived { certificate },
                );
            }
            (state, payload) => self.fail(Error::UnexpectedMessage {
                command: payload.command(),
                state: state.state(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capf_wire::{AuthRequest, Curve, EndSession, KeyGenRequest, KeyRequest};

    const ID: u32 = 0x0001_2345;

    fn last_outcome(p: &mut PhoneSession) -> Outcome {
        let mut last = None;
        while let Some(e) = p.poll_event() {
            last = Some(e);
        }
        match last {
            Some(PhoneEvent::Closed { outcome }) => outcome,
            other => panic!("no Closed event: {other:?}"),
        }
    }

    fn authenticated() -> (PhoneSession, Instant) {
        let now = Instant::now();
        let mut p = PhoneSession::new(PhoneConfig::default(), now);
        p.handle_input(now, &Message::new(ID, AuthRequest::new(3)).to_bytes());
        assert_eq!(
            p.poll_event(),
            Some(PhoneEvent::AuthRequested {
                session_id: ID,
                version: 3,
                server_version: 3,
                auth_type: None
            })
        );
        p.send_auth_response(now, AuthResponse::new("CSF123", 3).unwrap())
            .unwrap();
        p.poll_transmit().unwrap();
        (p, now)
    }

    #[test]
    fn answers_a_higher_server_version_with_3() {
        let now = Instant::now();
        let mut p = PhoneSession::new(PhoneConfig::default(), now);
        p.handle_input(now, &Message::new(7, AuthRequest::new(5)).to_bytes());
        assert!(matches!(
            p.poll_event(),
            Some(PhoneEvent::AuthRequested {
                version: 3,
                server_version: 5,
                session_id: 7,
                ..
            })
        ));
    }

    #[test]
    fn key_size_only_request_is_rsa_and_request_in_progress_goes_first() {
        let (mut p, now) = authenticated();
        p.handle_input(
            now,
            &Message::new(ID, KeyGenRequest::rsa_key_size_only(2048)).to_bytes(),
        );
        assert_eq!(
            p.poll_event(),
            Some(PhoneEvent::KeyGenerationRequested {
                key: KeyRequest::RsaKeySizeOnly(2048)
            })
        );
        assert_eq!(
            p.poll_transmit().unwrap(),
            Message::new(ID, RequestInProgress::new()).to_bytes()
        );
        assert_eq!(
            p.poll_timeout(),
            None,
            "key generation is the application's wait"
        );
    }

    #[test]
    fn closes_silently_on_an_ec_request_without_curve() {
        let (mut p, now) = authenticated();
        // KEY_TYPE=1 alone.
        let bytes = [
            0x55, 0x03, 0x00, 0x01, 0x23, 0x45, 0x00, 0x04, 0x11, 0x00, 0x01, 0x01,
        ];
        p.handle_input(now, &bytes);
        assert!(p.poll_transmit().is_none());
        assert_eq!(
            last_outcome(&mut p),
            Outcome::ProtocolError {
                error: Error::IncompleteKeyGenRequest {
                    key_type: capf_wire::KeyType::EC,
                    missing: capf_wire::Tag::CURVE
                },
                end_session: None
            }
        );
    }

    #[test]
    fn end_session_while_generating_ends_the_session() {
        let (mut p, now) = authenticated();
        p.handle_input(
            now,
            &Message::new(ID, KeyGenRequest::ec(Curve::SECP256R1)).to_bytes(),
        );
        p.handle_input(
            now,
            &Message::new(ID, EndSession::new(Reason::INVALID_ELEMENT)).to_bytes(),
        );
        assert_eq!(
            last_outcome(&mut p),
            Outcome::Ended {
                reason: Reason::INVALID_ELEMENT
            }
        );
        assert!(p.send_public_key(now, &[0x30, 0]).is_err());
    }

    #[test]
    fn eof_before_end_session_is_a_failure_and_after_it_normal() {
        let (mut p, now) = authenticated();
        p.handle_eof(now);
        assert_eq!(
            last_outcome(&mut p),
            Outcome::PeerClosed {
                state: State::WaitOperation
            }
        );
        let (mut p, now) = authenticated();
        p.handle_input(
            now,
            &Message::new(ID, EndSession::new(Reason::NO_ACTION)).to_bytes(),
        );
        p.handle_eof(now);
        assert_eq!(
            last_outcome(&mut p),
            Outcome::Ended {
                reason: Reason::NO_ACTION
            }
        );
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_means_no_deadline_not_a_panic() {
        let now = Instant::now();
        let config = PhoneConfig {
            message_timeout: Duration::MAX,
            ..PhoneConfig::default()
        };
        let mut p = PhoneSession::new(config, now);
        assert_eq!(p.poll_timeout(), None);
        p.handle_input(now, &Message::new(ID, AuthRequest::new(3)).to_bytes());
        assert!(p.poll_event().is_some());
        p.send_auth_response(now, AuthResponse::new("CSF123", 3).unwrap())
            .unwrap();
        assert_eq!(p.poll_timeout(), None);
        assert!(!p.is_closed());
    }

    #[test]
    fn times_out_without_sending_anything() {
        let (mut p, now) = authenticated();
        let deadline = p.poll_timeout().unwrap();
        assert_eq!(deadline, now + Duration::from_secs(30));
        p.handle_timeout(deadline - Duration::from_secs(1));
        assert!(!p.is_closed());
        p.handle_timeout(deadline);
        assert!(p.is_closed());
        assert!(p.poll_transmit().is_none());
    }
}
