//! The session error, the states a session names in it, and how a session ended.

use core::fmt;

use capf_wire::{Command, KeyType, Reason, Tag};

/// The state a session is in, as the spec's state machines name it (spec section 11).
///
/// One enum for both roles, so that [`Error`] and [`Outcome`] can say where something happened;
/// each variant's documentation says which role has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Server: AUTH_REQUEST sent, waiting for AUTH_RESPONSE.
    WaitAuth,
    /// Server: AUTH_RESPONSE received; the application looks the device up, authenticates it and
    /// calls [`crate::ServerSession::decide`].
    AwaitingDecision,
    /// Server: KEY_GEN_REQUEST sent, waiting for REQUEST_IN_PROGRESS or KEY_GEN_RESPONSE.
    WaitKey,
    /// Server: the phone's public key is in; the application issues the LSC and calls
    /// [`crate::ServerSession::deliver_certificate`] or [`crate::ServerSession::issuance_failed`].
    AwaitingCertificate,
    /// Server: SIGN_CERT_REQUEST sent, waiting for SIGN_CERT_RESPONSE (spec 16).
    WaitCsrSignature,
    /// Server: the phone signed the CSR; the application has the CA issue the LSC and calls
    /// [`crate::ServerSession::deliver_certificate`], [`crate::ServerSession::retry_later`] or
    /// [`crate::ServerSession::issuance_failed`] (spec 16).
    AwaitingCaCertificate,
    /// Server: STORE_CERT_REQUEST sent, waiting for STORE_CERT_RESPONSE.
    WaitStore,
    /// Server: FETCH_CERT_REQUEST sent, waiting for FETCH_CERT_RESPONSE.
    WaitFetch,
    /// Server: DELETE_CERT_REQUEST sent, waiting for DELETE_CERT_RESPONSE.
    WaitDelete,
    /// Phone: connected, waiting for the server's AUTH_REQUEST.
    WaitAuthRequest,
    /// Phone: AUTH_REQUEST received; the application calls
    /// [`crate::PhoneSession::send_auth_response`].
    AwaitingAuthResponse,
    /// Phone: AUTH_RESPONSE sent, waiting for the server's operation or END_SESSION.
    WaitOperation,
    /// Phone: KEY_GEN_REQUEST received; the application generates the key.
    GeneratingKey,
    /// Phone: KEY_GEN_RESPONSE sent, waiting for STORE_CERT_REQUEST (or END_SESSION).
    WaitCertificate,
    /// Phone: SIGN_CERT_REQUEST received; the application signs CSR_INFO with the key just
    /// generated (spec 16).
    SigningCsr,
    /// Phone: SIGN_CERT_RESPONSE sent, waiting for STORE_CERT_REQUEST, RETRY_LATER or
    /// END_SESSION (spec 16).
    WaitSignedCertificate,
    /// Phone: STORE_CERT_REQUEST received; the application checks and stores the LSC.
    StoringCertificate,
    /// Phone: FETCH_CERT_REQUEST received; the application reads its certificate.
    FetchingCertificate,
    /// Phone: DELETE_CERT_REQUEST received; the application deletes its LSC.
    DeletingCertificate,
    /// Phone: its last answer sent, waiting for END_SESSION.
    WaitEnd,
    /// Either role: the session is over.
    Closed,
}

impl State {
    /// The state's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::WaitAuth => "WaitAuth",
            State::AwaitingDecision => "AwaitingDecision",
            State::WaitKey => "WaitKey",
            State::AwaitingCertificate => "AwaitingCertificate",
            State::WaitCsrSignature => "WaitCsrSignature",
            State::AwaitingCaCertificate => "AwaitingCaCertificate",
            State::WaitStore => "WaitStore",
            State::WaitFetch => "WaitFetch",
            State::WaitDelete => "WaitDelete",
            State::WaitAuthRequest => "WaitAuthRequest",
            State::AwaitingAuthResponse => "AwaitingAuthResponse",
            State::WaitOperation => "WaitOperation",
            State::GeneratingKey => "GeneratingKey",
            State::WaitCertificate => "WaitCertificate",
            State::SigningCsr => "SigningCsr",
            State::WaitSignedCertificate => "WaitSignedCertificate",
            State::StoringCertificate => "StoringCertificate",
            State::FetchingCertificate => "FetchingCertificate",
            State::DeletingCertificate => "DeletingCertificate",
            State::WaitEnd => "WaitEnd",
            State::Closed => "Closed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in a session: a peer's protocol error (reported in [`Outcome::ProtocolError`])
/// or a call the session cannot honour (returned by the call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's bytes do not decode (frame, TLV or value layer; spec 9.3).
    #[error("malformed message: {0}")]
    Decode(#[from] capf_wire::Error),
    /// A message carries another session id than the one AUTH_REQUEST fixed (spec 2.3, S3).
    #[error("session id {found} does not match the id {expected} assigned in AUTH_REQUEST")]
    SessionIdMismatch {
        /// The session's id.
        expected: u32,
        /// The id in the message.
        found: u32,
    },
    /// A command the state machine does not expect now (spec 11: wrong order, a named-only
    /// command, or anything from the phone while the application decides).
    #[error("unexpected {command} in state {state}")]
    UnexpectedMessage {
        /// The message's command.
        command: Command,
        /// The state it arrived in.
        state: State,
    },
    /// AUTH_RESPONSE without VERSION, or with a version outside 1-3 (spec 5.3 project rule).
    #[error("unsupported VERSION {version:?} in AUTH_RESPONSE (1 to 3 accepted)")]
    UnsupportedVersion {
        /// The version sent, if any.
        version: Option<u8>,
    },
    /// More REQUEST_IN_PROGRESS messages than the configured limit (spec 8.2 project rule: 16).
    #[error("more than {limit} REQUEST_IN_PROGRESS messages")]
    TooManyRequestsInProgress {
        /// The limit.
        limit: u32,
    },
    /// KEY_GEN_REQUEST lacks the element its key type needs (KEY_SIZE for RSA, CURVE for EC).
    #[error("KEY_GEN_REQUEST for {key_type} lacks {missing}")]
    IncompleteKeyGenRequest {
        /// The key type asked for (RSA when KEY_TYPE is absent, spec 5.4).
        key_type: KeyType,
        /// The missing element.
        missing: Tag,
    },
    /// KEY_GEN_REQUEST with a KEY_TYPE that is neither RSA nor EC.
    #[error("KEY_GEN_REQUEST with unknown {key_type}")]
    UnknownKeyType {
        /// The value received.
        key_type: KeyType,
    },
    /// SIGN_CERT_RESPONSE with REASON 1 but no CSR_SIGNATURE (spec 16: success needs the
    /// signature); also what [`crate::PhoneSession::csr_signing_failed`] answers when given
    /// REASON 1.
    #[error("SIGN_CERT_RESPONSE with REASON 1 lacks CSR_SIGNATURE")]
    MissingCsrSignature,
    /// SIGN_CERT_RESPONSE with a REASON other than 1 and a CSR_SIGNATURE (spec 16: a failure
    /// comes with REASON alone).
    #[error("SIGN_CERT_RESPONSE with REASON {reason} carries CSR_SIGNATURE")]
    UnexpectedCsrSignature {
        /// The REASON sent.
        reason: Reason,
    },
    /// The application called a method the session's state does not allow.
    #[error("{call} is not possible in state {state}")]
    WrongState {
        /// The method called.
        call: &'static str,
        /// The session's state.
        state: State,
    },
    /// An EC key was asked of a client that negotiated a version below 3: such clients (Jabber,
    /// version 2) get KEY_SIZE-only requests and can only make RSA keys (spec 8.11).
    #[error("a version {version} client can only be asked for an RSA key (KEY_SIZE only)")]
    EcKeyNeedsVersion3 {
        /// The negotiated version.
        version: u8,
    },
    /// A message the application asked for cannot be built (for example a certificate too large
    /// for one message).
    #[error("cannot build {command}: {source}")]
    Encode {
        /// The message being built.
        command: Command,
        /// Why.
        #[source]
        source: capf_wire::Error,
    },
}

/// How a session ended: the last event of every session is `Closed { outcome }`.
///
/// A server records the operation's result only from the events before it (and only on
/// [`Outcome::Ended`]); on every other outcome the device's state stays as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The session ran its course. Server: it sent END_SESSION with `reason` (the operation's end,
    /// or the application's decision: unknown device 9, failed authentication 7, ...). Phone: it
    /// received END_SESSION with `reason`.
    Ended {
        /// The END_SESSION REASON.
        reason: Reason,
    },
    /// The application ended the session with [`crate::ServerSession::abort`] or
    /// [`crate::PhoneSession::abort`].
    Aborted {
        /// The END_SESSION REASON the server sent (none for a phone).
        end_session: Option<Reason>,
    },
    /// The peer broke the protocol (spec 9.3).
    ProtocolError {
        /// What it did.
        error: Error,
        /// The END_SESSION REASON the server sent: 7 while the framing is intact, none when it is
        /// broken (and always none for a phone, which closes without a word).
        end_session: Option<Reason>,
    },
    /// A deadline passed while waiting for the peer (spec 1 project rule).
    TimedOut {
        /// The state that waited.
        state: State,
        /// The END_SESSION REASON the server sent (7; none for a phone).
        end_session: Option<Reason>,
    },
    /// The peer closed the connection before the session ended.
    PeerClosed {
        /// The state the session was in.
        state: State,
    },
}

impl Outcome {
    /// The END_SESSION REASON this side sent, if it sent one (a phone never sends END_SESSION;
    /// for [`Outcome::Ended`] on a phone this is the reason received).
    pub fn end_session(&self) -> Option<Reason> {
        match self {
            Outcome::Ended { reason } => Some(*reason),
            Outcome::Aborted { end_session }
            | Outcome::ProtocolError { end_session, .. }
            | Outcome::TimedOut { end_session, .. } => *end_session,
            Outcome::PeerClosed { .. } => None,
        }
    }
}

impl Outcome {
    /// The command the peer sent when the session expected another in `state`: what a server
    /// reads to tell a phone without endpoint-CSR support (it answered SIGN_CERT_REQUEST with
    /// END_SESSION or anything else) with
    /// `outcome.unexpected_in(State::WaitCsrSignature)` (spec 16).
    pub fn unexpected_in(&self, state: State) -> Option<Command> {
        match self {
            Outcome::ProtocolError {
                error:
                    Error::UnexpectedMessage {
                        command,
                        state: found,
                    },
                ..
            } if *found == state => Some(*command),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ended { reason } => write!(f, "ended with END_SESSION {reason}"),
            Outcome::Aborted { end_session } => match end_session {
                Some(r) => write!(f, "aborted by the application (END_SESSION {r})"),
                None => f.write_str("aborted by the application"),
            },
            Outcome::ProtocolError { error, end_session } => match end_session {
                Some(r) => write!(f, "protocol error: {error} (END_SESSION {r})"),
                None => write!(f, "protocol error: {error} (closed without a message)"),
            },
            Outcome::TimedOut { state, end_session } => match end_session {
                Some(r) => write!(f, "timed out in {state} (END_SESSION {r})"),
                None => write!(f, "timed out in {state}"),
            },
            Outcome::PeerClosed { state } => write!(f, "peer closed the connection in {state}"),
        }
    }
}
