//! The endpoint-CSR extension (spec 16): an external CA's install, RETRY_LATER after
//! authentication and after the CSR, a phone without CSR support, and every way the phone's
//! answer to SIGN_CERT_REQUEST can go wrong; byte-exact against the shared vectors.

use std::time::{Duration, Instant};

use capf_session::{
    Decision, Error, KeyRequest, Outcome, PhoneConfig, PhoneEvent, PhoneSession, ServerConfig,
    ServerEvent, ServerSession, State,
};
use capf_wire::{
    AuthRequest, Command, KeyGenResponse, Message, Reason, RequestInProgress, RetryDelay,
    RetryLater,
};

use crate::harness::{AfterCsr, Pair, PhoneApp, SESSION_ID, ServerApp, ServerCsr, end_session};
use crate::vectors::{all, bytes, named};

const LSC: &[u8] = b"\x30\x82\x00\x10 an LSC's DER....";
const CSR_INFO: &[u8] = b"\x30\x10 a CertificationRequestInfo";
/// The id of the shared vectors.
const ID: u32 = 0x0001_2345;

fn install() -> ServerApp {
    ServerApp {
        decision: Decision::Install(KeyRequest::Rsa(2048)),
        certificate: Some(LSC.to_vec()),
    }
}

fn csr_pair(then: AfterCsr, phone: PhoneApp, phone_config: PhoneConfig) -> Pair {
    let mut pair = Pair::with_configs(ServerConfig::default(), phone_config, install(), phone);
    pair.server_csr = ServerCsr::Request {
        csr_info: CSR_INFO.to_vec(),
        then,
    };
    pair
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn ended(reason: Reason) -> Outcome {
    Outcome::Ended { reason }
}

const OPENING_TO_CSR: [&str; 7] = [
    "S>AUTH_REQUEST",
    "P>AUTH_RESPONSE",
    "S>KEY_GEN_REQUEST",
    "P>REQUEST_IN_PROGRESS",
    "P>KEY_GEN_RESPONSE",
    "S>SIGN_CERT_REQUEST",
    "P>SIGN_CERT_RESPONSE",
];

#[test]
fn external_ca_that_signs_at_once_installs_like_capf_after_the_csr() {
    // Spec 16.x, the CA answers at once: 8.2 from step 6.
    let mut pair = csr_pair(
        AfterCsr::Deliver,
        PhoneApp::default(),
        PhoneConfig::default(),
    );
    pair.run();
    let mut expected = OPENING_TO_CSR.to_vec();
    expected.extend([
        "S>STORE_CERT_REQUEST",
        "P>STORE_CERT_RESPONSE",
        "S>END_SESSION",
    ]);
    assert_eq!(pair.commands(), strings(&expected));
    assert!(
        pair.phone_events
            .contains(&PhoneEvent::CsrSignatureRequested {
                csr_info_der: CSR_INFO.to_vec()
            })
    );
    assert!(pair.server_events.contains(&ServerEvent::CsrSigned {
        signature: b"fake CSR signature".to_vec()
    }));
    assert!(pair.server_events.contains(&ServerEvent::CertificateStored));
    assert_eq!(
        pair.server_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
    assert_eq!(
        pair.phone_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
}

#[test]
fn pending_ca_request_gets_retry_later_then_end_session_1() {
    // Spec 16.x, the CA has not answered.
    let mut pair = csr_pair(
        AfterCsr::RetryLater(3600),
        PhoneApp::default(),
        PhoneConfig::default(),
    );
    pair.run();
    let mut expected = OPENING_TO_CSR.to_vec();
    expected.extend(["S>RETRY_LATER", "S>END_SESSION"]);
    assert_eq!(pair.commands(), strings(&expected));
    assert!(
        pair.phone_events
            .contains(&PhoneEvent::RetryLater { delay_secs: 3600 })
    );
    assert_eq!(
        pair.last_from_server(),
        Some(&end_session(SESSION_ID, 1)[..])
    );
    assert_eq!(
        pair.server_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
    assert_eq!(
        pair.phone_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
}

#[test]
fn phone_back_before_the_ca_answered_gets_retry_later_after_authentication() {
    // Spec 16.y.
    let server = ServerApp {
        decision: Decision::RetryLater { delay_secs: 60 },
        certificate: None,
    };
    let mut pair = Pair::new(server, PhoneApp::default());
    pair.run();
    assert_eq!(
        pair.commands(),
        strings(&[
            "S>AUTH_REQUEST",
            "P>AUTH_RESPONSE",
            "S>RETRY_LATER",
            "S>END_SESSION"
        ])
    );
    assert!(
        pair.phone_events
            .contains(&PhoneEvent::RetryLater { delay_secs: 60 })
    );
    assert_eq!(
        pair.server_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
    assert_eq!(
        pair.phone_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
}

#[test]
fn a_retry_delay_out_of_range_is_refused_and_changes_nothing() {
    for delay_secs in [0, capf_wire::MAX_RETRY_DELAY_SECS + 1] {
        let now = Instant::now();
        let mut s = ServerSession::new(ServerConfig::default(), ID, now);
        s.poll_transmit();
        s.handle_input(now, &named("AUTH_RESPONSE device name only"));
        assert!(matches!(s.poll_event(), Some(ServerEvent::Authenticate(_))));
        assert_eq!(
            s.decide(now, Decision::RetryLater { delay_secs }),
            Err(Error::Encode {
                command: Command::RETRY_LATER,
                source: capf_wire::Error::RetryDelayOutOfRange {
                    offset: 0,
                    seconds: delay_secs
                }
            })
        );
        assert_eq!(s.state(), State::AwaitingDecision);
        assert!(s.poll_transmit().is_none());
        // ... and the same through retry_later after the CSR.
        s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
            .unwrap();
        s.poll_transmit();
        s.handle_input(
            now,
            &named("KEY_GEN_RESPONSE with the endpoint-CSR RSA 2048 public key"),
        );
        s.poll_event();
        s.request_csr_signature(now, CSR_INFO).unwrap();
        s.poll_transmit();
        s.handle_input(
            now,
            &named("SIGN_CERT_RESPONSE with CSR_SIGNATURE (RSA 2048)"),
        );
        assert!(matches!(
            s.poll_event(),
            Some(ServerEvent::CsrSigned { .. })
        ));
        assert!(s.retry_later(now, delay_secs).is_err());
        assert_eq!(s.state(), State::AwaitingCaCertificate);
        assert!(s.poll_transmit().is_none());
    }
}

#[test]
fn ca_refusal_after_the_csr_ends_with_7() {
    let mut pair = csr_pair(AfterCsr::Fail, PhoneApp::default(), PhoneConfig::default());
    pair.run();
    assert_eq!(
        pair.last_from_server(),
        Some(&end_session(SESSION_ID, 7)[..])
    );
    assert_eq!(pair.server_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
    assert_eq!(pair.phone_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
}

#[test]
fn phone_that_cannot_sign_gets_end_session_7_and_the_server_hears_why() {
    let phone = PhoneApp {
        csr_answer: Err(Reason(3)),
        ..PhoneApp::default()
    };
    let mut pair = csr_pair(AfterCsr::Deliver, phone, PhoneConfig::default());
    pair.run();
    assert!(
        pair.server_events
            .contains(&ServerEvent::CsrSigningFailed { reason: Reason(3) })
    );
    assert!(!pair.commands().contains(&"S>STORE_CERT_REQUEST".to_owned()));
    assert_eq!(
        pair.last_from_server(),
        Some(&end_session(SESSION_ID, 7)[..])
    );
    assert_eq!(pair.server_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
    assert_eq!(pair.phone_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
}

#[test]
fn phone_without_csr_support_closes_silently_and_the_server_sees_where() {
    let config = PhoneConfig {
        endpoint_csr: false,
        ..PhoneConfig::default()
    };
    let mut pair = csr_pair(AfterCsr::Deliver, PhoneApp::default(), config);
    pair.run();
    assert_eq!(pair.commands().last().unwrap(), "S>SIGN_CERT_REQUEST");
    assert_eq!(
        pair.phone_outcome(),
        Some(&Outcome::ProtocolError {
            error: Error::UnexpectedMessage {
                command: Command::SIGN_CERT_REQUEST,
                state: State::WaitCertificate
            },
            end_session: None
        })
    );
    // The phone hangs up: the server was waiting for the signature.
    pair.server.handle_eof(pair.now);
    pair.run();
    assert_eq!(
        pair.server_outcome(),
        Some(&Outcome::PeerClosed {
            state: State::WaitCsrSignature
        })
    );
    assert!(pair.server.poll_transmit().is_none());
}

#[test]
fn phone_without_csr_support_does_not_understand_retry_later_either() {
    let config = PhoneConfig {
        endpoint_csr: false,
        ..PhoneConfig::default()
    };
    let server = ServerApp {
        decision: Decision::RetryLater { delay_secs: 60 },
        certificate: None,
    };
    let mut pair = Pair::with_configs(ServerConfig::default(), config, server, PhoneApp::default());
    pair.run();
    assert_eq!(
        pair.phone_outcome(),
        Some(&Outcome::ProtocolError {
            error: Error::UnexpectedMessage {
                command: Command::RETRY_LATER,
                state: State::WaitOperation
            },
            end_session: None
        })
    );
}

/// A server with the vectors' id that has sent SIGN_CERT_REQUEST (byte-exact with the vector).
fn server_waiting_for_the_signature(now: Instant) -> ServerSession {
    let mut s = ServerSession::new(ServerConfig::default(), ID, now);
    s.poll_transmit();
    s.handle_input(now, &named("AUTH_RESPONSE device name only"));
    assert!(matches!(s.poll_event(), Some(ServerEvent::Authenticate(_))));
    s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
        .unwrap();
    assert_eq!(
        s.poll_transmit().unwrap(),
        named("KEY_GEN_REQUEST RSA 2048")
    );
    let key = named("KEY_GEN_RESPONSE with the endpoint-CSR RSA 2048 public key");
    s.handle_input(now, &key);
    let Some(ServerEvent::PublicKey { spki_der }) = s.poll_event() else {
        panic!("no PublicKey")
    };
    assert_eq!(spki_der, key[11..]);
    let request = named("SIGN_CERT_REQUEST with CSR_INFO (RSA 2048 key)");
    s.request_csr_signature(now, &request[11..]).unwrap();
    assert_eq!(s.poll_transmit().unwrap(), request);
    assert_eq!(s.state(), State::WaitCsrSignature);
    s
}

fn server_outcome(s: &mut ServerSession) -> Outcome {
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    match events.last() {
        Some(ServerEvent::Closed { outcome }) => outcome.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_vectors_run_byte_exact_through_the_server() {
    let now = Instant::now();
    let mut s = server_waiting_for_the_signature(now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(30)));
    let response = named("SIGN_CERT_RESPONSE with CSR_SIGNATURE (RSA 2048)");
    s.handle_input(now, &response);
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::CsrSigned {
            signature: response[15..].to_vec()
        })
    );
    assert_eq!(s.state(), State::AwaitingCaCertificate);
    assert_eq!(
        s.poll_timeout(),
        None,
        "the CA's answer is the application's wait"
    );
    s.retry_later(now, 3600).unwrap();
    assert_eq!(
        std::iter::from_fn(|| s.poll_transmit()).collect::<Vec<_>>(),
        [
            named("RETRY_LATER with RETRY_DELAY 3600"),
            named("END_SESSION reason 1 (UPDATE_CERTIFICATE)")
        ]
    );
    assert_eq!(server_outcome(&mut s), ended(Reason::UPDATE_CERTIFICATE));
}

#[test]
fn the_vectors_run_byte_exact_through_the_phone() {
    let now = Instant::now();
    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    p.handle_input(now, &named("AUTH_REQUEST version 3, auth type NONE"));
    p.poll_event();
    p.send_auth_response(
        now,
        capf_wire::AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap(),
    )
    .unwrap();
    p.poll_transmit();
    p.handle_input(now, &named("KEY_GEN_REQUEST EC secp256r1"));
    p.poll_event();
    p.poll_transmit();
    let key = named("KEY_GEN_RESPONSE with the endpoint-CSR EC P-256 public key");
    p.send_public_key(now, &key[11..]).unwrap();
    assert_eq!(p.poll_transmit().unwrap(), key);
    let request = named("SIGN_CERT_REQUEST with CSR_INFO (EC P-256 key)");
    p.handle_input(now, &request);
    assert_eq!(
        p.poll_event(),
        Some(PhoneEvent::CsrSignatureRequested {
            csr_info_der: request[11..].to_vec()
        })
    );
    assert_eq!(p.state(), State::SigningCsr);
    assert_eq!(p.poll_timeout(), None, "signing is the application's wait");
    let response = named("SIGN_CERT_RESPONSE with CSR_SIGNATURE (EC P-256)");
    p.send_csr_signature(now, &response[15..]).unwrap();
    assert_eq!(p.poll_transmit().unwrap(), response);
    assert_eq!(p.state(), State::WaitSignedCertificate);
    assert_eq!(p.poll_timeout(), Some(now + Duration::from_secs(30)));
    p.handle_input(now, &named("RETRY_LATER with RETRY_DELAY 3600"));
    assert_eq!(
        p.poll_event(),
        Some(PhoneEvent::RetryLater { delay_secs: 3600 })
    );
    assert_eq!(p.state(), State::WaitEnd);
    p.handle_input(now, &named("END_SESSION reason 1 (UPDATE_CERTIFICATE)"));
    assert_eq!(
        p.poll_event(),
        Some(PhoneEvent::Closed {
            outcome: ended(Reason::UPDATE_CERTIFICATE)
        })
    );
    assert!(
        p.poll_transmit().is_none(),
        "a phone never answers END_SESSION"
    );
}

#[test]
fn phone_that_cannot_sign_sends_the_failure_vector() {
    let now = Instant::now();
    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    p.handle_input(now, &named("AUTH_REQUEST version 3, auth type NONE"));
    p.send_auth_response(
        now,
        capf_wire::AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap(),
    )
    .unwrap();
    p.handle_input(now, &named("KEY_GEN_REQUEST RSA 2048"));
    p.send_public_key(now, b"\x30\x00").unwrap();
    p.handle_input(
        now,
        &named("SIGN_CERT_REQUEST with CSR_INFO (RSA 2048 key)"),
    );
    std::iter::from_fn(|| p.poll_transmit()).for_each(drop);
    // REASON 1 alone would be the semantic error the server refuses: refused here.
    assert_eq!(
        p.csr_signing_failed(now, Reason::UPDATE_CERTIFICATE),
        Err(Error::MissingCsrSignature)
    );
    assert_eq!(p.state(), State::SigningCsr);
    assert!(p.poll_transmit().is_none());
    let too_long = vec![0u8; capf_wire::MAX_CSR_SIGNATURE_LEN + 1];
    assert!(matches!(
        p.send_csr_signature(now, &too_long),
        Err(Error::Encode {
            command: Command::SIGN_CERT_RESPONSE,
            ..
        })
    ));
    assert_eq!(p.state(), State::SigningCsr);
    p.csr_signing_failed(now, Reason::INVALID_ELEMENT).unwrap();
    assert_eq!(
        p.poll_transmit().unwrap(),
        named("SIGN_CERT_RESPONSE failure (REASON 7)")
    );
    assert_eq!(p.state(), State::WaitEnd);
}

#[test]
fn any_other_answer_to_sign_cert_request_ends_with_7_and_names_the_command() {
    let now = Instant::now();
    let others = [
        (Command::END_SESSION, end_session(ID, 1)),
        (
            Command::REQUEST_IN_PROGRESS,
            Message::new(ID, RequestInProgress::new()).to_bytes(),
        ),
        (
            Command::KEY_GEN_RESPONSE,
            Message::new(ID, KeyGenResponse::failure(Reason::INVALID_ELEMENT)).to_bytes(),
        ),
        (
            Command::AUTH_REQUEST,
            Message::new(ID, AuthRequest::new(3)).to_bytes(),
        ),
    ];
    for (command, input) in others {
        let mut s = server_waiting_for_the_signature(now);
        s.handle_input(now, &input);
        assert_eq!(s.poll_transmit(), Some(end_session(ID, 7)), "{command}");
        let outcome = server_outcome(&mut s);
        assert_eq!(
            outcome,
            Outcome::ProtocolError {
                error: Error::UnexpectedMessage {
                    command,
                    state: State::WaitCsrSignature
                },
                end_session: Some(Reason::INVALID_ELEMENT)
            }
        );
        // The one match a handler needs to say "the phone does not support the endpoint CSR".
        assert_eq!(
            outcome.unexpected_in(State::WaitCsrSignature),
            Some(command)
        );
        assert_eq!(outcome.unexpected_in(State::WaitKey), None);
    }
}

#[test]
fn semantic_vectors_answering_sign_cert_request_end_with_7() {
    let now = Instant::now();
    let mut seen = 0;
    for v in all()
        .iter()
        .filter(|v| v["error_layer"] == "semantic" && v["extension"] == "endpoint-csr")
    {
        seen += 1;
        assert_eq!(v["context"]["state"], "WaitCsrSignature");
        let mut s = server_waiting_for_the_signature(now);
        s.handle_input(now, &bytes(v));
        assert_eq!(s.poll_transmit(), Some(end_session(ID, 7)), "{}", v["name"]);
        let Outcome::ProtocolError {
            error,
            end_session: Some(Reason::INVALID_ELEMENT),
        } = server_outcome(&mut s)
        else {
            panic!("{}", v["name"])
        };
        assert!(
            matches!(
                error,
                Error::MissingCsrSignature | Error::UnexpectedCsrSignature { .. }
            ),
            "{error}"
        );
        assert_eq!(error.to_string(), v["expect_error"].as_str().unwrap());
    }
    assert_eq!(seen, 2);
}

#[test]
fn no_signature_in_time_is_a_timeout_with_end_session_7() {
    let now = Instant::now();
    let mut s = server_waiting_for_the_signature(now);
    s.handle_timeout(now + Duration::from_secs(29));
    assert_eq!(s.state(), State::WaitCsrSignature);
    s.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(s.poll_transmit(), Some(end_session(ID, 7)));
    assert_eq!(
        server_outcome(&mut s),
        Outcome::TimedOut {
            state: State::WaitCsrSignature,
            end_session: Some(Reason::INVALID_ELEMENT)
        }
    );
}

#[test]
fn eof_while_waiting_for_the_signature_is_peer_closed_there() {
    let now = Instant::now();
    let mut s = server_waiting_for_the_signature(now);
    s.handle_eof(now);
    assert!(s.poll_transmit().is_none());
    assert_eq!(
        server_outcome(&mut s),
        Outcome::PeerClosed {
            state: State::WaitCsrSignature
        }
    );
}

#[test]
fn phone_times_out_silently_while_the_ca_is_asked() {
    let now = Instant::now();
    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    p.handle_input(now, &named("AUTH_REQUEST version 3, auth type NONE"));
    p.send_auth_response(
        now,
        capf_wire::AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap(),
    )
    .unwrap();
    p.handle_input(now, &named("KEY_GEN_REQUEST RSA 2048"));
    p.send_public_key(now, b"\x30\x00").unwrap();
    p.handle_input(
        now,
        &named("SIGN_CERT_REQUEST with CSR_INFO (RSA 2048 key)"),
    );
    p.send_csr_signature(now, b"sig").unwrap();
    std::iter::from_fn(|| p.poll_transmit()).for_each(drop);
    p.handle_timeout(now + Duration::from_secs(30));
    assert!(p.poll_transmit().is_none());
    let last = std::iter::from_fn(|| p.poll_event()).last();
    assert_eq!(
        last,
        Some(PhoneEvent::Closed {
            outcome: Outcome::TimedOut {
                state: State::WaitSignedCertificate,
                end_session: None
            }
        })
    );
}

#[test]
fn extension_calls_in_the_wrong_state_are_refused_and_change_nothing() {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::default(), ID, now);
    s.poll_transmit();
    assert_eq!(
        s.request_csr_signature(now, CSR_INFO),
        Err(Error::WrongState {
            call: "request_csr_signature",
            state: State::WaitAuth
        })
    );
    assert!(s.retry_later(now, 60).is_err());
    s.handle_input(now, &named("AUTH_RESPONSE device name only"));
    s.poll_event();
    s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
        .unwrap();
    s.poll_transmit();
    s.handle_input(
        now,
        &Message::new(
            ID,
            KeyGenResponse::with_public_key(&b"\x30\x00"[..]).unwrap(),
        )
        .to_bytes(),
    );
    s.poll_event();
    // Before the CSR is signed, RETRY_LATER has no place (spec 16.y uses the decision).
    assert_eq!(
        s.retry_later(now, 60),
        Err(Error::WrongState {
            call: "retry_later",
            state: State::AwaitingCertificate
        })
    );
    assert!(matches!(
        s.request_csr_signature(now, &[]),
        Err(Error::Encode {
            command: Command::SIGN_CERT_REQUEST,
            source: capf_wire::Error::ValueLength { .. }
        })
    ));
    assert_eq!(s.state(), State::AwaitingCertificate);
    assert!(s.poll_transmit().is_none());
    s.request_csr_signature(now, CSR_INFO).unwrap();
    s.poll_transmit();
    for refused in [
        s.request_csr_signature(now, CSR_INFO),
        s.deliver_certificate(now, LSC),
        s.issuance_failed(),
        s.retry_later(now, 60),
    ] {
        assert!(matches!(
            refused,
            Err(Error::WrongState {
                state: State::WaitCsrSignature,
                ..
            })
        ));
    }
    assert!(s.poll_transmit().is_none());

    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    assert!(p.send_csr_signature(now, b"sig").is_err());
    assert!(p.csr_signing_failed(now, Reason::INVALID_ELEMENT).is_err());
    assert_eq!(p.state(), State::WaitAuthRequest);
}

#[test]
fn phone_closes_silently_on_extension_messages_out_of_place_or_malformed() {
    let now = Instant::now();
    let authenticated = || {
        let mut p = PhoneSession::new(PhoneConfig::default(), now);
        p.handle_input(now, &named("AUTH_REQUEST version 3, auth type NONE"));
        p.send_auth_response(
            now,
            capf_wire::AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap(),
        )
        .unwrap();
        std::iter::from_fn(|| p.poll_transmit()).for_each(drop);
        std::iter::from_fn(|| p.poll_event()).for_each(drop);
        p
    };
    // SIGN_CERT_REQUEST before any key was generated.
    let mut p = authenticated();
    p.handle_input(
        now,
        &named("SIGN_CERT_REQUEST with CSR_INFO (RSA 2048 key)"),
    );
    assert!(p.is_closed());
    assert!(p.poll_transmit().is_none());
    // RETRY_LATER while the key is being generated.
    let mut p = authenticated();
    p.handle_input(now, &named("KEY_GEN_REQUEST RSA 2048"));
    let retry = Message::new(ID, RetryLater::new(RetryDelay::new(5).unwrap())).to_bytes();
    p.handle_input(now, &retry);
    assert!(p.is_closed());
    // The malformed server -> phone vectors of spec 16.
    let mut seen = 0;
    for v in all().iter().filter(|v| {
        v["extension"] == "endpoint-csr"
            && v["direction"] == "server->phone"
            && v["error_layer"] == "value"
    }) {
        seen += 1;
        let mut p = authenticated();
        p.handle_input(now, &bytes(v));
        assert!(p.poll_transmit().is_none(), "{}", v["name"]);
        let last = std::iter::from_fn(|| p.poll_event()).last();
        assert!(
            matches!(
                last,
                Some(PhoneEvent::Closed {
                    outcome: Outcome::ProtocolError {
                        error: Error::Decode(_),
                        end_session: None
                    }
                })
            ),
            "{}: {last:?}",
            v["name"]
        );
    }
    assert_eq!(seen, 4);
}
