//! Checks of the capf-session fuzz targets (`server_session`, `phone_session`);
//! `tests/fuzz_replay_session.rs` replays their corpora in CI.
//!
//! An input is a script: a header (the session's configuration), then steps, each an opcode
//! byte and its operands: the peer's bytes in any chunking, time passing, the peer hanging up,
//! and the application's answers (any call of the session's API, in any state). Any input is
//! allowed; only a broken invariant panics:
//!
//! - exactly one `Closed` event, the last one: no event and nothing transmitted after it, and
//!   `is_closed` agrees with it; a hang-up at the end closes every session still open;
//! - every transmit is one whole message that decodes strictly, re-encodes to the same bytes,
//!   carries the session's id and a command of its sender's role;
//! - a server sends END_SESSION only as its last message, exactly as its outcome says; a phone
//!   never sends one; a client below version 3 never gets KEY_TYPE (spec 8.11);
//! - RETRY_LATER is followed by END_SESSION 1 at once, and a SIGN_CERT_RESPONSE carries
//!   CSR_SIGNATURE exactly when its REASON is 1 (spec 16);
//! - a refused call changes nothing; a deadline never fires early and always fires when due.

// Broken invariants panic on purpose: that is what the fuzzer and the replay test look for.
#![allow(clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use capf_session::{
    Certificate, Decision, Error, KeyRequest, MESSAGE_HEAD_LEN, Outcome, PhoneConfig, PhoneEvent,
    PhoneSession, ServerConfig, ServerEvent, ServerSession, State, Timeouts,
};
use capf_wire::{
    AuthResponse, AuthType, CertificateType, CertificateValue, Command, Curve, ErrorPolicy,
    Message, Payload, Reason, Strictness,
};

/// `server_session`: a server session driven by a script.
///
/// Header (8 bytes): flags (bit 0: AUTH_REQUEST without AUTH_TYPE, bit 1: lenient decoding,
/// bit 2: close silently on a bad protocol id), the REQUEST_IN_PROGRESS limit, the message
/// timeout in seconds plus one (0: the default), the key-generation timeout in minutes plus one
/// (0: the default), the session id (u32 big-endian).
///
/// Steps, by opcode byte modulo 7: 0 input (u16 length, bytes), 1 time (u16 seconds; 0: to the
/// deadline), 2 EOF, 3 `decide` (a byte picks the decision, then its operand), 4
/// `deliver_certificate` (u16 length, DER), 5 `issuance_failed`, 6 `abort` (REASON byte).
/// Opcode bytes from 0xF0 up drive the endpoint-CSR calls (spec 16) instead, modulo 2: 0
/// `request_csr_signature` (u16 length, CSR_INFO), 1 `retry_later` (u32 seconds). (Kept out of
/// the modulo so the corpus's older scripts keep their meaning.)
pub(crate) fn server(data: &[u8]) {
    server_trace(data);
}

/// `phone_session`: a phone session driven by a script.
///
/// Header (2 bytes): flags (bit 0: no REQUEST_IN_PROGRESS, bit 1: lenient decoding, bit 2: no
/// endpoint CSR, spec 16), the message timeout in seconds plus one (0: the default).
///
/// Steps, by opcode byte modulo 11: 0 input (u16 length, bytes), 1 time (u16 seconds; 0: to
/// the deadline), 2 EOF, 3 `send_auth_response` built (VERSION byte, 0: the one offered; u8
/// length and device name; flags byte: bit 0 PASSWORD (u8 length, text), bit 1 CERTIFICATE
/// (type byte, u16 length, DER), bit 2 SIGNED_DATA (u8 length, bytes)), 4 `send_auth_response`
/// with a whole AUTH_RESPONSE (u16 length, message bytes), 5 `send_public_key` (u16 length,
/// DER), 6 `key_generation_failed` (REASON byte), 7 `store_result` (byte, bit 0), 8
/// `send_certificate` (byte: bit 0 clear none; set: type byte, u16 length, DER), 9
/// `delete_result` (byte, bit 0), 10 `abort`. Opcode bytes from 0xF0 up drive the
/// endpoint-CSR calls (spec 16) instead, modulo 2: 0 `send_csr_signature` (u16 length,
/// signature), 1 `csr_signing_failed` (REASON byte). Header flag bit 2: no endpoint CSR.
pub(crate) fn phone(data: &[u8]) {
    phone_trace(data);
}

/// Runs a `server_session` script; returns the events, in order, as `Debug` text.
pub(crate) fn server_trace(data: &[u8]) -> Vec<String> {
    let mut script = Script(data);
    let Some(config) = server_config(&mut script) else {
        return Vec::new();
    };
    let Some(session_id) = script.u32() else {
        return Vec::new();
    };
    let now = Instant::now();
    let mut run = Run::new(ServerSession::new(config, session_id, now), now);
    run.observe();
    while run.server_step(&mut script).is_some() {}
    run.finish()
}

/// Runs a `phone_session` script; returns the events, in order, as `Debug` text.
pub(crate) fn phone_trace(data: &[u8]) -> Vec<String> {
    let mut script = Script(data);
    let Some(config) = phone_config(&mut script) else {
        return Vec::new();
    };
    let now = Instant::now();
    let mut run = Run::new(PhoneSession::new(config, now), now);
    run.observe();
    while run.phone_step(&mut script).is_some() {}
    run.finish()
}

fn server_config(script: &mut Script<'_>) -> Option<ServerConfig> {
    let flags = script.byte()?;
    let max_requests_in_progress = u32::from(script.byte()?);
    let defaults = Timeouts::default();
    let message = script.timeout(defaults.message, 1)?;
    let key_generation = script.timeout(defaults.key_generation, 60)?;
    Some(ServerConfig {
        auth_type: (flags & 1 == 0).then_some(AuthType::NONE),
        timeouts: Timeouts {
            message,
            key_generation,
        },
        max_requests_in_progress,
        strictness: strictness(flags & 2 != 0),
        error_policy: ErrorPolicy {
            end_session_on_bad_protocol_id: flags & 4 == 0,
        },
    })
}

fn phone_config(script: &mut Script<'_>) -> Option<PhoneConfig> {
    let flags = script.byte()?;
    let defaults = PhoneConfig::default();
    Some(PhoneConfig {
        message_timeout: script.timeout(defaults.message_timeout, 1)?,
        send_request_in_progress: flags & 1 == 0,
        strictness: strictness(flags & 2 != 0),
        endpoint_csr: flags & 4 == 0,
    })
}

fn strictness(lenient: bool) -> Strictness {
    if lenient {
        Strictness::Lenient
    } else {
        Strictness::Strict
    }
}

/// The script's bytes not read yet. Every read past the end is `None`, which ends the run.
struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }

    /// Up to `len` bytes (fewer at the end of the script).
    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken
    }

    /// A u8 length, then that many bytes.
    fn short(&mut self) -> Option<&'a [u8]> {
        let len = self.byte()?;
        Some(self.bytes(len.into()))
    }

    /// A u16 length, then that many bytes.
    fn long(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        Some(self.bytes(len.into()))
    }

    /// A byte: 0 is `default`, n is n - 1 `units` of seconds.
    fn timeout(&mut self, default: Duration, unit: u64) -> Option<Duration> {
        Some(match self.byte()? {
            0 => default,
            n => Duration::from_secs(u64::from(n - 1) * unit),
        })
    }
}

/// Which side a session plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Phone,
}

/// What the invariants need of a session, either role.
trait Session {
    type Event: std::fmt::Debug;
    const ROLE: Role;
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn outcome(event: &Self::Event) -> Option<&Outcome>;
    fn is_closed(&self) -> bool;
    fn state(&self) -> State;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_input(&mut self, now: Instant, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Instant);
    fn handle_eof(&mut self, now: Instant);
    /// The session id every transmit must carry (a phone has one once AUTH_REQUEST came).
    fn transmit_id(&self) -> Option<u32>;
    /// Role-specific checks of one event, and of one transmit.
    fn check_event(&self, event: &Self::Event);
    fn check_transmit(&self, message: &Message<'_>);
    /// The VERSION an AUTH_REQUEST offered (phone), which an application answers with.
    fn offered_version(_event: &Self::Event) -> Option<u8> {
        None
    }
}

impl Session for ServerSession {
    type Event = ServerEvent;
    const ROLE: Role = Role::Server;
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        ServerSession::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<ServerEvent> {
        ServerSession::poll_event(self)
    }
    fn outcome(event: &ServerEvent) -> Option<&Outcome> {
        match event {
            ServerEvent::Closed { outcome } => Some(outcome),
            _ => None,
        }
    }
    fn is_closed(&self) -> bool {
        ServerSession::is_closed(self)
    }
    fn state(&self) -> State {
        ServerSession::state(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        ServerSession::poll_timeout(self)
    }
    fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        ServerSession::handle_input(self, now, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        ServerSession::handle_timeout(self, now);
    }
    fn handle_eof(&mut self, now: Instant) {
        ServerSession::handle_eof(self, now);
    }
    fn transmit_id(&self) -> Option<u32> {
        Some(self.session_id())
    }
    fn check_event(&self, event: &ServerEvent) {
        assert!(self.message_head().len() <= MESSAGE_HEAD_LEN);
        if let ServerEvent::CsrSigned { signature } = event {
            assert!((1..=capf_wire::MAX_CSR_SIGNATURE_LEN).contains(&signature.len()));
        }
        if let ServerEvent::Authenticate(auth) = event {
            assert_eq!(auth.session_id, self.session_id());
            assert!((1..=3).contains(&auth.version), "{auth:?}");
            assert_eq!(self.version(), Some(auth.version));
        }
    }
    fn check_transmit(&self, message: &Message<'_>) {
        if let Payload::KeyGenRequest(request) = &message.payload {
            let version = self.version().expect("KEY_GEN_REQUEST after AUTH_RESPONSE");
            if version < 3 {
                // Spec 8.11: such clients read KEY_SIZE only.
                assert_eq!(request.key_type(), None, "KEY_TYPE to version {version}");
            }
        }
    }
}

impl Session for PhoneSession {
    type Event = PhoneEvent;
    const ROLE: Role = Role::Phone;
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        PhoneSession::poll_transmit(self)
    }
    fn poll_event(&mut self) -> Option<PhoneEvent> {
        PhoneSession::poll_event(self)
    }
    fn outcome(event: &PhoneEvent) -> Option<&Outcome> {
        match event {
            PhoneEvent::Closed { outcome } => Some(outcome),
            _ => None,
        }
    }
    fn is_closed(&self) -> bool {
        PhoneSession::is_closed(self)
    }
    fn state(&self) -> State {
        PhoneSession::state(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        PhoneSession::poll_timeout(self)
    }
    fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        PhoneSession::handle_input(self, now, bytes);
    }
    fn handle_timeout(&mut self, now: Instant) {
        PhoneSession::handle_timeout(self, now);
    }
    fn handle_eof(&mut self, now: Instant) {
        PhoneSession::handle_eof(self, now);
    }
    fn transmit_id(&self) -> Option<u32> {
        self.session_id()
    }
    fn check_event(&self, event: &PhoneEvent) {
        if let PhoneEvent::AuthRequested {
            session_id,
            version,
            server_version,
            ..
        } = event
        {
            assert_eq!(Some(*session_id), self.session_id());
            assert_eq!(*version, (*server_version).min(capf_session::PHONE_VERSION));
        }
    }
    fn check_transmit(&self, _message: &Message<'_>) {}
    fn offered_version(event: &PhoneEvent) -> Option<u8> {
        match event {
            PhoneEvent::AuthRequested { version, .. } => Some(*version),
            _ => None,
        }
    }
}

/// The commands each role may send (spec 3).
fn sends(role: Role, command: Command) -> bool {
    const SERVER: [Command; 8] = [
        Command::AUTH_REQUEST,
        Command::KEY_GEN_REQUEST,
        Command::STORE_CERT_REQUEST,
        Command::FETCH_CERT_REQUEST,
        Command::DELETE_CERT_REQUEST,
        Command::END_SESSION,
        Command::RETRY_LATER,
        Command::SIGN_CERT_REQUEST,
    ];
    const PHONE: [Command; 7] = [
        Command::AUTH_RESPONSE,
        Command::REQUEST_IN_PROGRESS,
        Command::KEY_GEN_RESPONSE,
        Command::STORE_CERT_RESPONSE,
        Command::FETCH_CERT_RESPONSE,
        Command::DELETE_CERT_RESPONSE,
        Command::SIGN_CERT_RESPONSE,
    ];
    match role {
        Role::Server => SERVER.contains(&command),
        Role::Phone => PHONE.contains(&command),
    }
}

/// One session, its simulated clock, and what it has done so far.
struct Run<S> {
    session: S,
    now: Instant,
    /// The `Closed` event has been seen.
    closed: bool,
    /// The VERSION the last AUTH_REQUEST offered (phone).
    offered_version: u8,
    trace: Vec<String>,
}

impl<S: Session> Run<S> {
    fn new(session: S, now: Instant) -> Self {
        Run {
            session,
            now,
            closed: false,
            offered_version: capf_session::PHONE_VERSION,
            trace: Vec::new(),
        }
    }

    /// Drains the transmits and events of the last step and checks them.
    fn observe(&mut self) {
        let was_closed = self.closed;
        let mut sent_end_session = None;
        let mut retry_later = false;
        while let Some(bytes) = self.session.poll_transmit() {
            assert!(!was_closed, "transmit after Closed: {bytes:02x?}");
            assert!(
                sent_end_session.is_none(),
                "transmit after END_SESSION: {bytes:02x?}"
            );
            let message = Message::decode_with(&bytes, Strictness::Strict)
                .unwrap_or_else(|e| panic!("transmit does not decode ({e}): {bytes:02x?}"));
            assert_eq!(message.to_bytes(), bytes, "transmit does not re-encode");
            assert!(
                sends(S::ROLE, message.command()),
                "{:?} sent {:?}",
                S::ROLE,
                message.command()
            );
            assert_eq!(Some(message.session_id), self.session.transmit_id());
            self.session.check_transmit(&message);
            assert!(
                !retry_later || matches!(&message.payload, Payload::EndSession(_)),
                "RETRY_LATER not followed by END_SESSION"
            );
            match &message.payload {
                Payload::EndSession(end) => {
                    if retry_later {
                        assert_eq!(
                            end.reason(),
                            Reason::UPDATE_CERTIFICATE,
                            "after RETRY_LATER"
                        );
                    }
                    sent_end_session = Some(end.reason());
                }
                Payload::RetryLater(_) => retry_later = true,
                Payload::SignCertResponse(r) => assert_eq!(
                    r.reason() == Reason::UPDATE_CERTIFICATE,
                    r.csr_signature().is_some(),
                    "SIGN_CERT_RESPONSE REASON vs CSR_SIGNATURE (spec 16)"
                ),
                _ => {}
            }
        }
        assert!(
            !retry_later || sent_end_session.is_some(),
            "RETRY_LATER without END_SESSION"
        );
        let mut closing = None;
        while let Some(event) = self.session.poll_event() {
            assert!(!self.closed, "event after Closed: {event:?}");
            self.session.check_event(&event);
            if let Some(version) = S::offered_version(&event) {
                self.offered_version = version;
            }
            if let Some(outcome) = S::outcome(&event) {
                self.closed = true;
                closing = Some(outcome.clone());
            }
            self.trace.push(format!("{event:?}"));
        }
        assert_eq!(self.session.is_closed(), self.closed, "is_closed disagrees");
        assert_eq!(self.session.state() == State::Closed, self.closed);
        if self.closed {
            assert_eq!(self.session.poll_timeout(), None, "deadline after Closed");
        }
        match S::ROLE {
            // END_SESSION goes out exactly when the session ends with one, as the outcome says.
            Role::Server => assert_eq!(
                sent_end_session,
                closing.as_ref().and_then(Outcome::end_session),
                "END_SESSION sent vs outcome {closing:?}"
            ),
            Role::Phone => assert_eq!(sent_end_session, None),
        }
    }

    /// A call of the application returned: a refusal must have changed nothing.
    fn answered(&mut self, before: State, result: Result<(), Error>) {
        if let Err(e) = result {
            assert_eq!(
                self.session.state(),
                before,
                "refused call changed state: {e}"
            );
            assert!(
                self.session.poll_transmit().is_none(),
                "refused call sent: {e}"
            );
            assert!(
                self.session.poll_event().is_none(),
                "refused call raised: {e}"
            );
        }
        self.observe();
    }

    fn input(&mut self, script: &mut Script<'_>) -> Option<()> {
        let bytes = script.long()?;
        self.session.handle_input(self.now, bytes);
        self.observe();
        Some(())
    }

    fn time(&mut self, script: &mut Script<'_>) -> Option<()> {
        let seconds = script.u16()?;
        let deadline = self.session.poll_timeout();
        let before = self.session.state();
        self.now = match (seconds, deadline) {
            (0, Some(deadline)) => deadline.max(self.now),
            _ => self.now + Duration::from_secs(seconds.into()),
        };
        self.session.handle_timeout(self.now);
        if deadline.is_some_and(|d| self.now >= d) {
            assert!(self.session.is_closed(), "deadline passed, still {before}");
        } else {
            assert_eq!(self.session.state(), before, "timeout before the deadline");
            assert!(
                self.session.poll_event().is_none(),
                "event before the deadline"
            );
        }
        self.observe();
        Some(())
    }

    fn eof(&mut self) {
        self.session.handle_eof(self.now);
        self.observe();
        assert!(self.closed, "EOF left the session open");
    }

    /// The peer hangs up at the end of every script: whatever the state, the session is over.
    fn finish(mut self) -> Vec<String> {
        self.eof();
        self.trace
    }
}

impl Run<ServerSession> {
    fn server_step(&mut self, script: &mut Script<'_>) -> Option<()> {
        let before = self.session.state();
        let now = self.now;
        let op = script.byte()?;
        if op >= EXTENSION_OPCODES {
            let result = match (op - EXTENSION_OPCODES) % 2 {
                0 => {
                    let csr_info = script.long()?;
                    self.session.request_csr_signature(now, csr_info)
                }
                _ => {
                    let delay = script.u32()?;
                    self.session.retry_later(now, delay)
                }
            };
            self.answered(before, result);
            return Some(());
        }
        let result = match op % 7 {
            0 => return self.input(script),
            1 => return self.time(script),
            2 => {
                self.eof();
                return Some(());
            }
            3 => {
                let decision = decision(script)?;
                self.session.decide(now, decision)
            }
            4 => {
                let der = script.long()?;
                self.session.deliver_certificate(now, der)
            }
            5 => self.session.issuance_failed(),
            _ => {
                let reason = Reason(script.byte()?);
                self.session.abort(reason)
            }
        };
        self.answered(before, result);
        Some(())
    }
}

/// Opcode (and decision) bytes from here up drive the endpoint-CSR extension (spec 16).
const EXTENSION_OPCODES: u8 = 0xF0;

/// A byte picks the decision (modulo 9; from 0xF0 up RETRY_LATER, with a u32 delay), then its
/// operand.
fn decision(script: &mut Script<'_>) -> Option<Decision> {
    let pick = script.byte()?;
    if pick >= EXTENSION_OPCODES {
        return Some(Decision::RetryLater {
            delay_secs: script.u32()?,
        });
    }
    Some(match pick % 9 {
        0 => Decision::UnknownDevice,
        1 => Decision::AuthenticationFailed,
        2 => Decision::NoPendingOperation,
        3 => Decision::Install(KeyRequest::Rsa(script.u16()?)),
        4 => Decision::Install(KeyRequest::Ec(Curve(script.byte()?))),
        5 => Decision::Install(KeyRequest::RsaKeySizeOnly(script.u16()?)),
        6 => Decision::Fetch,
        7 => Decision::Delete,
        _ => Decision::Refuse(Reason(script.byte()?)),
    })
}

impl Run<PhoneSession> {
    fn phone_step(&mut self, script: &mut Script<'_>) -> Option<()> {
        let before = self.session.state();
        let now = self.now;
        let op = script.byte()?;
        if op >= EXTENSION_OPCODES {
            let result = match (op - EXTENSION_OPCODES) % 2 {
                0 => {
                    let signature = script.long()?;
                    self.session.send_csr_signature(now, signature)
                }
                _ => {
                    let reason = Reason(script.byte()?);
                    self.session.csr_signing_failed(now, reason)
                }
            };
            self.answered(before, result);
            return Some(());
        }
        let result = match op % 11 {
            0 => return self.input(script),
            1 => return self.time(script),
            2 => {
                self.eof();
                return Some(());
            }
            3 => match built_auth_response(script, self.offered_version)? {
                Some(response) => self.session.send_auth_response(now, response),
                // The application could not build it: it makes no call.
                None => return Some(()),
            },
            4 => {
                let bytes = script.long()?;
                match Message::decode_with(bytes, Strictness::Strict) {
                    Ok(Message {
                        payload: Payload::AuthResponse(response),
                        ..
                    }) => self.session.send_auth_response(now, response),
                    _ => return Some(()),
                }
            }
            5 => {
                let der = script.long()?;
                self.session.send_public_key(now, der)
            }
            6 => {
                let reason = Reason(script.byte()?);
                self.session.key_generation_failed(now, reason)
            }
            7 => {
                let stored = script.byte()? & 1 == 1;
                self.session.store_result(now, stored)
            }
            8 => {
                let certificate = if script.byte()? & 1 == 1 {
                    Some(Certificate {
                        certificate_type: CertificateType(script.byte()?),
                        der: script.long()?.to_vec(),
                    })
                } else {
                    None
                };
                self.session.send_certificate(now, certificate.as_ref())
            }
            9 => {
                let deleted = script.byte()? & 1 == 1;
                self.session.delete_result(now, deleted)
            }
            _ => self.session.abort(),
        };
        self.answered(before, result);
        Some(())
    }
}

/// An AUTH_RESPONSE built as an application does; `Some(None)` when the constructors refuse
/// the script's values.
fn built_auth_response(
    script: &mut Script<'_>,
    offered: u8,
) -> Option<Option<AuthResponse<'static>>> {
    let version = match script.byte()? {
        0 => offered,
        v => v,
    };
    let name = String::from_utf8_lossy(script.short()?).into_owned();
    let flags = script.byte()?;
    let password = if flags & 1 == 1 {
        Some(String::from_utf8_lossy(script.short()?).into_owned())
    } else {
        None
    };
    let certificate = if flags & 2 == 2 {
        Some((CertificateType(script.byte()?), script.long()?.to_vec()))
    } else {
        None
    };
    let signed_data = if flags & 4 == 4 {
        Some(script.short()?.to_vec())
    } else {
        None
    };
    let build = || -> Result<AuthResponse<'static>, capf_wire::Error> {
        let mut response = AuthResponse::new(name, version)?;
        if let Some(password) = password {
            response = response.with_password(password)?;
        }
        if let Some((certificate_type, der)) = certificate {
            response = response.with_certificate(CertificateValue::new(certificate_type, der)?)?;
        }
        if let Some(signature) = signed_data {
            response = response.with_signed_data(signature)?;
        }
        Ok(response)
    };
    Some(build().ok())
}
