//! Every flow of spec section 8 between the two sessions in memory, deadlines on simulated time,
//! and the server's answers to peers that break the rules.

use std::time::{Duration, Instant};

use capf_session::{
    Certificate, Decision, Error, KeyRequest, Outcome, PhoneConfig, PhoneEvent, PhoneSession,
    ServerConfig, ServerEvent, ServerSession, State,
};
use capf_wire::{
    AuthResponse, Command, Curve, EndSession, KeyGenResponse, Message, Reason, RequestInProgress,
    StoreCertificateResponse,
};

use crate::harness::{Pair, PhoneApp, SESSION_ID, ServerApp, end_session};
use crate::vectors::named;

const LSC: &[u8] = b"\x30\x82\x00\x10 an LSC's DER....";

fn app(decision: Decision) -> ServerApp {
    ServerApp {
        decision,
        certificate: Some(LSC.to_vec()),
    }
}

fn ended(reason: Reason) -> Outcome {
    Outcome::Ended { reason }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn install_rsa_runs_to_end_session_1_and_the_phone_gets_the_lsc() {
    let mut pair = Pair::new(
        app(Decision::Install(KeyRequest::Rsa(2048))),
        PhoneApp::default(),
    );
    pair.run();
    assert_eq!(
        pair.commands(),
        strings(&[
            "S>AUTH_REQUEST",
            "P>AUTH_RESPONSE",
            "S>KEY_GEN_REQUEST",
            "P>REQUEST_IN_PROGRESS",
            "P>KEY_GEN_RESPONSE",
            "S>STORE_CERT_REQUEST",
            "P>STORE_CERT_RESPONSE",
            "S>END_SESSION",
        ])
    );
    assert!(pair.server_events.contains(&ServerEvent::PublicKey {
        spki_der: PhoneApp::default().public_key.unwrap()
    }));
    assert!(pair.server_events.contains(&ServerEvent::CertificateStored));
    assert!(
        pair.phone_events
            .contains(&PhoneEvent::KeyGenerationRequested {
                key: KeyRequest::Rsa(2048)
            })
    );
    assert!(
        pair.phone_events
            .contains(&PhoneEvent::CertificateReceived {
                certificate: Certificate::lsc(LSC)
            })
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
fn install_ec_asks_for_the_curve_and_ends_with_1() {
    for curve in [Curve::SECP256R1, Curve::SECP384R1, Curve::SECP521R1] {
        let mut pair = Pair::new(
            app(Decision::Install(KeyRequest::Ec(curve))),
            PhoneApp::default(),
        );
        pair.run();
        assert!(
            pair.phone_events
                .contains(&PhoneEvent::KeyGenerationRequested {
                    key: KeyRequest::Ec(curve)
                })
        );
        assert_eq!(
            pair.server_outcome(),
            Some(&ended(Reason::UPDATE_CERTIFICATE))
        );
    }
}

#[test]
fn phone_that_cannot_store_gets_end_session_1_and_the_server_hears_store_failed() {
    let phone = PhoneApp {
        store_ok: false,
        ..PhoneApp::default()
    };
    let mut pair = Pair::new(app(Decision::Install(KeyRequest::Rsa(2048))), phone);
    pair.run();
    assert!(pair.server_events.contains(&ServerEvent::StoreFailed {
        reason: Reason::INVALID_ELEMENT
    }));
    assert!(!pair.server_events.contains(&ServerEvent::CertificateStored));
    assert_eq!(
        pair.server_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
}

#[test]
fn key_generation_failure_ends_with_7() {
    let phone = PhoneApp {
        public_key: None,
        ..PhoneApp::default()
    };
    let mut pair = Pair::new(app(Decision::Install(KeyRequest::Rsa(2048))), phone);
    pair.run();
    assert!(
        pair.server_events
            .contains(&ServerEvent::KeyGenerationFailed {
                reason: Some(Reason::INVALID_ELEMENT)
            })
    );
    assert_eq!(
        pair.last_from_server(),
        Some(&end_session(SESSION_ID, 7)[..])
    );
    assert_eq!(pair.phone_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
}

#[test]
fn issuance_failure_ends_with_7_and_no_store_request() {
    let server = ServerApp {
        decision: Decision::Install(KeyRequest::Rsa(2048)),
        certificate: None,
    };
    let mut pair = Pair::new(server, PhoneApp::default());
    pair.run();
    assert!(!pair.commands().contains(&"S>STORE_CERT_REQUEST".to_owned()));
    assert_eq!(pair.server_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
    assert_eq!(pair.phone_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
}

#[test]
fn fetch_returns_the_phone_certificate_or_nothing_and_ends_with_0() {
    let mic = Certificate {
        certificate_type: capf_wire::CertificateType::MIC,
        der: b"\x30\x03MIC".to_vec(),
    };
    for certificate in [Some(mic), None] {
        let phone = PhoneApp {
            certificate: certificate.clone(),
            ..PhoneApp::default()
        };
        let mut pair = Pair::new(app(Decision::Fetch), phone);
        pair.run();
        let reason = if certificate.is_some() {
            Reason::UPDATE_CERTIFICATE
        } else {
            Reason::INVALID_ELEMENT
        };
        assert!(pair.server_events.contains(&ServerEvent::Fetched {
            reason,
            certificate
        }));
        assert_eq!(pair.server_outcome(), Some(&ended(Reason::NO_ACTION)));
        assert_eq!(pair.phone_outcome(), Some(&ended(Reason::NO_ACTION)));
    }
}

#[test]
fn delete_reports_what_the_phone_did_and_ends_with_1() {
    for (deleted, reason) in [
        (true, Reason::UPDATE_CERTIFICATE),
        (false, Reason::INVALID_ELEMENT),
    ] {
        let phone = PhoneApp {
            delete_ok: deleted,
            ..PhoneApp::default()
        };
        let mut pair = Pair::new(app(Decision::Delete), phone);
        pair.run();
        assert!(
            pair.server_events
                .contains(&ServerEvent::Deleted { reason })
        );
        assert_eq!(
            pair.server_outcome(),
            Some(&ended(Reason::UPDATE_CERTIFICATE))
        );
    }
}

#[test]
fn decisions_without_an_operation_end_with_their_reason() {
    for (decision, reason) in [
        (Decision::NoPendingOperation, 0),
        (Decision::UnknownDevice, 9),
        (Decision::AuthenticationFailed, 7),
        (Decision::Refuse(Reason::INVALID_ELEMENT), 7),
    ] {
        let mut pair = Pair::new(app(decision), PhoneApp::default());
        pair.run();
        assert_eq!(
            pair.commands(),
            strings(&["S>AUTH_REQUEST", "P>AUTH_RESPONSE", "S>END_SESSION"])
        );
        assert_eq!(
            pair.last_from_server(),
            Some(&end_session(SESSION_ID, reason)[..])
        );
        assert_eq!(pair.server_outcome(), Some(&ended(Reason(reason))));
        assert_eq!(pair.phone_outcome(), Some(&ended(Reason(reason))));
    }
}

#[test]
fn jabber_version_2_client_is_asked_for_rsa_with_key_size_only() {
    let jabber = PhoneApp {
        device_name: "CSF123".into(),
        version: Some(2),
        password: None,
        ..PhoneApp::default()
    };
    let phone_config = PhoneConfig {
        send_request_in_progress: false,
        ..PhoneConfig::default()
    };
    let mut pair = Pair::with_configs(
        ServerConfig::default(),
        phone_config,
        app(Decision::Install(KeyRequest::Rsa(2048))),
        jabber,
    );
    pair.run();
    assert_eq!(pair.server.version(), Some(2));
    assert_eq!(
        pair.wire[2].1,
        hex::decode("55035eed000100050a00020800").unwrap(),
        "KEY_SIZE only, no KEY_TYPE (spec 8.11)"
    );
    assert!(
        pair.phone_events
            .contains(&PhoneEvent::KeyGenerationRequested {
                key: KeyRequest::RsaKeySizeOnly(2048)
            })
    );
    assert!(
        !pair
            .commands()
            .contains(&"P>REQUEST_IN_PROGRESS".to_owned())
    );
    assert_eq!(
        pair.server_outcome(),
        Some(&ended(Reason::UPDATE_CERTIFICATE))
    );
}

#[test]
fn jabber_vector_reaches_the_application_with_version_2_and_cannot_get_ec() {
    let bytes = named("AUTH_RESPONSE Jabber style (VERSION 2)");
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), 0x0001_2345, now);
    server.poll_transmit();
    server.handle_input(now, &bytes);
    let Some(ServerEvent::Authenticate(auth)) = server.poll_event() else {
        panic!("no Authenticate")
    };
    assert_eq!((auth.version, auth.password()), (2, None));
    assert_eq!(
        server.decide(now, Decision::Install(KeyRequest::Ec(Curve::SECP256R1))),
        Err(Error::EcKeyNeedsVersion3 { version: 2 })
    );
    // Still deciding: the application can refuse instead.
    server
        .decide(now, Decision::Refuse(Reason::INVALID_ELEMENT))
        .unwrap();
    assert_eq!(server.poll_transmit(), Some(end_session(0x0001_2345, 7)));
}

#[test]
fn version_4_and_absent_version_are_refused_with_7_before_any_lookup() {
    for version in [Some(4u8), None] {
        let now = Instant::now();
        let mut server = ServerSession::new(ServerConfig::default(), SESSION_ID, now);
        server.poll_transmit();
        let mut m =
            Message::new(SESSION_ID, AuthResponse::new("SEP001A2B3C4D5E", 4).unwrap()).to_bytes();
        if version.is_none() {
            // Remove the VERSION element (07 00 01 04) and fix the body length.
            let at = m.windows(4).position(|w| w == [7, 0, 1, 4]).unwrap();
            m.drain(at..at + 4);
            m[7] -= 4;
        }
        server.handle_input(now, &m);
        assert_eq!(server.poll_transmit(), Some(end_session(SESSION_ID, 7)));
        assert_eq!(
            server.poll_event(),
            Some(ServerEvent::Closed {
                outcome: Outcome::ProtocolError {
                    error: Error::UnsupportedVersion { version },
                    end_session: Some(Reason::INVALID_ELEMENT)
                }
            }),
            "no Authenticate event first"
        );
    }
}

fn slow_key_pair() -> Pair {
    let phone = PhoneApp {
        answer_key_generation: false,
        ..PhoneApp::default()
    };
    let mut pair = Pair::new(app(Decision::Install(KeyRequest::Rsa(4096))), phone);
    pair.run();
    assert_eq!(pair.server.state(), State::WaitKey);
    assert_eq!(pair.phone.state(), State::GeneratingKey);
    pair
}

#[test]
fn key_generation_taking_59_minutes_completes() {
    let mut pair = slow_key_pair();
    pair.advance(Duration::from_secs(59 * 60));
    assert!(!pair.server.is_closed());
    pair.answer_key_generation();
    pair.run();
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
fn key_generation_taking_61_minutes_times_out_with_7() {
    let mut pair = slow_key_pair();
    pair.advance(Duration::from_secs(61 * 60));
    assert_eq!(
        pair.server_outcome(),
        Some(&Outcome::TimedOut {
            state: State::WaitKey,
            end_session: Some(Reason::INVALID_ELEMENT)
        })
    );
    assert_eq!(
        pair.last_from_server(),
        Some(&end_session(SESSION_ID, 7)[..])
    );
    assert_eq!(pair.phone_outcome(), Some(&ended(Reason::INVALID_ELEMENT)));
    // The phone's key arrives too late: the session is over.
    assert!(matches!(
        pair.phone.send_public_key(pair.now, b"\x30\x00"),
        Err(Error::WrongState { .. })
    ));
}

/// A raw phone: the server session alone, driven with hand-made messages.
fn server_waiting_for_key(now: Instant) -> ServerSession {
    let mut s = ServerSession::new(ServerConfig::default(), SESSION_ID, now);
    s.poll_transmit();
    s.handle_input(
        now,
        &Message::new(SESSION_ID, AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap()).to_bytes(),
    );
    s.poll_event();
    s.decide(now, Decision::Install(KeyRequest::Rsa(2048)))
        .unwrap();
    s.poll_transmit();
    s
}

fn rip() -> Vec<u8> {
    Message::new(SESSION_ID, RequestInProgress::new()).to_bytes()
}

#[test]
fn repeated_request_in_progress_keeps_a_slow_phone_alive_past_an_hour() {
    let start = Instant::now();
    let mut s = server_waiting_for_key(start);
    let mut now = start;
    for _ in 0..3 {
        now += Duration::from_secs(50 * 60);
        s.handle_timeout(now);
        s.handle_input(now, &rip());
    }
    now += Duration::from_secs(50 * 60);
    s.handle_timeout(now);
    assert_eq!(
        s.state(),
        State::WaitKey,
        "200 minutes, never 60 in silence"
    );
    s.handle_input(
        now,
        &Message::new(
            SESSION_ID,
            KeyGenResponse::with_public_key(&b"\x30\x00"[..]).unwrap(),
        )
        .to_bytes(),
    );
    assert_eq!(s.state(), State::AwaitingCertificate);
}

#[test]
fn sixteen_requests_in_progress_are_accepted_and_the_seventeenth_ends_with_7() {
    let now = Instant::now();
    let mut s = server_waiting_for_key(now);
    for count in 1..=16 {
        s.handle_input(now, &rip());
        assert_eq!(
            s.poll_event(),
            Some(ServerEvent::KeyGenerationInProgress { count })
        );
    }
    assert_eq!(s.poll_transmit(), None);
    s.handle_input(now, &rip());
    assert_eq!(s.poll_transmit(), Some(end_session(SESSION_ID, 7)));
    assert_eq!(
        s.poll_event(),
        Some(ServerEvent::Closed {
            outcome: Outcome::ProtocolError {
                error: Error::TooManyRequestsInProgress { limit: 16 },
                end_session: Some(Reason::INVALID_ELEMENT)
            }
        })
    );
}

#[test]
fn silent_phone_gets_end_session_7_after_30_seconds() {
    let phone = PhoneApp {
        answer_auth: false,
        ..PhoneApp::default()
    };
    let mut pair = Pair::new(app(Decision::NoPendingOperation), phone);
    pair.run();
    pair.advance(Duration::from_secs(29));
    assert!(!pair.server.is_closed());
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.server_outcome(),
        Some(&Outcome::TimedOut {
            state: State::WaitAuth,
            end_session: Some(Reason::INVALID_ELEMENT)
        })
    );
    assert_eq!(
        pair.last_from_server(),
        Some(&end_session(SESSION_ID, 7)[..])
    );
}

#[test]
fn waiting_on_the_application_has_no_session_deadline() {
    let now = Instant::now();
    let mut s = ServerSession::new(ServerConfig::default(), SESSION_ID, now);
    s.poll_transmit();
    s.handle_input(
        now,
        &Message::new(SESSION_ID, AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap()).to_bytes(),
    );
    assert_eq!(s.state(), State::AwaitingDecision);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(now + Duration::from_secs(24 * 3600));
    assert!(!s.is_closed());
}

#[test]
fn out_of_order_messages_end_with_7() {
    let store_response = Message::new(
        SESSION_ID,
        StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE),
    )
    .to_bytes();
    let auth =
        Message::new(SESSION_ID, AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap()).to_bytes();
    // (what the phone did before, the stray message, the state it arrives in)
    let now = Instant::now();
    let cases: Vec<(Vec<Vec<u8>>, Vec<u8>, State)> = vec![
        (vec![], store_response.clone(), State::WaitAuth),
        (vec![], rip(), State::WaitAuth),
        (vec![auth.clone()], auth.clone(), State::AwaitingDecision),
        (vec![auth.clone()], rip(), State::AwaitingDecision),
        // END_SESSION from a phone: a server -> phone command.
        (
            vec![],
            Message::new(SESSION_ID, EndSession::new(Reason::NO_ACTION)).to_bytes(),
            State::WaitAuth,
        ),
    ];
    for (before, stray, state) in cases {
        let mut s = ServerSession::new(ServerConfig::default(), SESSION_ID, now);
        s.poll_transmit();
        for m in &before {
            s.handle_input(now, m);
        }
        let command = Command(stray[1]);
        s.handle_input(now, &stray);
        assert_eq!(
            s.poll_transmit(),
            Some(end_session(SESSION_ID, 7)),
            "{command}"
        );
        let last = std::iter::from_fn(|| s.poll_event()).last();
        assert_eq!(
            last,
            Some(ServerEvent::Closed {
                outcome: Outcome::ProtocolError {
                    error: Error::UnexpectedMessage { command, state },
                    end_session: Some(Reason::INVALID_ELEMENT)
                }
            })
        );
        assert!(s.decide(now, Decision::NoPendingOperation).is_err());
    }

    // A message while the server issues the certificate.
    let mut s = server_waiting_for_key(now);
    s.handle_input(
        now,
        &Message::new(
            SESSION_ID,
            KeyGenResponse::with_public_key(&b"\x30\x00"[..]).unwrap(),
        )
        .to_bytes(),
    );
    s.handle_input(now, &rip());
    assert_eq!(s.poll_transmit(), Some(end_session(SESSION_ID, 7)));
    assert!(s.deliver_certificate(now, LSC).is_err());
}

#[test]
fn eof_mid_session_closes_silently_and_names_the_state() {
    let now = Instant::now();
    let mut s = server_waiting_for_key(now);
    s.handle_input(now, &rip()[..5]);
    s.handle_eof(now);
    assert_eq!(s.poll_transmit(), None);
    let last = std::iter::from_fn(|| s.poll_event()).last();
    assert!(
        matches!(
            last,
            Some(ServerEvent::Closed {
                outcome: Outcome::ProtocolError {
                    end_session: None,
                    ..
                }
            })
        ),
        "{last:?}"
    );

    let mut s = server_waiting_for_key(now);
    s.handle_eof(now);
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(
        std::iter::from_fn(|| s.poll_event()).last(),
        Some(ServerEvent::Closed {
            outcome: Outcome::PeerClosed {
                state: State::WaitKey
            }
        })
    );
}

#[test]
fn phone_closes_without_a_word_on_a_wrong_session_id_or_an_unexpected_command() {
    let now = Instant::now();
    let auth_request = |id: u32| {
        Message::new(
            id,
            capf_wire::AuthRequest::new(3).with_auth_type(capf_wire::AuthType::NONE),
        )
        .to_bytes()
    };
    // Wrong id after AUTH_REQUEST fixed it.
    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    p.handle_input(now, &auth_request(1));
    p.poll_event();
    p.send_auth_response(now, AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap())
        .unwrap();
    p.poll_transmit();
    p.handle_input(now, &end_session(2, 0));
    assert_eq!(p.poll_transmit(), None);
    assert_eq!(
        p.poll_event(),
        Some(PhoneEvent::Closed {
            outcome: Outcome::ProtocolError {
                error: Error::SessionIdMismatch {
                    expected: 1,
                    found: 2
                },
                end_session: None
            }
        })
    );
    // Anything but AUTH_REQUEST first.
    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    p.handle_input(now, &end_session(1, 0));
    assert!(p.is_closed());
    assert_eq!(p.poll_transmit(), None);
    // A second AUTH_REQUEST.
    let mut p = PhoneSession::new(PhoneConfig::default(), now);
    p.handle_input(now, &auth_request(1));
    p.poll_event();
    p.send_auth_response(now, AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap())
        .unwrap();
    p.poll_transmit();
    p.handle_input(now, &auth_request(1));
    assert!(p.is_closed());
    assert_eq!(p.poll_transmit(), None);
}
