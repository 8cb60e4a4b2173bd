//! Every recorded session of the shared vectors (capfd + capfc in the lab), replayed byte-exact
//! through the server session and through the phone session.

use std::time::Instant;

use capf_session::{
    Certificate, Decision, KeyRequest, Outcome, PhoneConfig, PhoneEvent, PhoneSession,
    ServerConfig, ServerEvent, ServerSession, State,
};
use capf_wire::{Command, Curve, Message, Payload, Reason};

use crate::vectors::{Direction, Recorded, recorded};

/// What the recording implies the server application decided, and how the session ends.
struct Expected {
    decision: Decision,
    /// The events before `Closed`, in short form.
    events: &'static [&'static str],
    outcome: Outcome,
}

fn ended(reason: Reason) -> Outcome {
    Outcome::Ended { reason }
}

fn expected(label: &str) -> Expected {
    use Decision::*;
    let install = &["Authenticate", "InProgress(1)", "PublicKey", "Stored"][..];
    let (decision, events, outcome) = match label {
        "01-rsa-install" | "08-password-install" => (
            Install(KeyRequest::Rsa(2048)),
            install,
            ended(Reason::UPDATE_CERTIFICATE),
        ),
        "02-fetch" | "11-lsc-rsa-auth-fetch" => (
            Fetch,
            &["Authenticate", "Fetched(UPDATE_CERTIFICATE, certificate)"][..],
            ended(Reason::NO_ACTION),
        ),
        "03-fetch-no-cert" => (
            Fetch,
            &["Authenticate", "Fetched(INVALID_ELEMENT, none)"][..],
            ended(Reason::NO_ACTION),
        ),
        "04-delete" => (
            Delete,
            &["Authenticate", "Deleted(UPDATE_CERTIFICATE)"][..],
            ended(Reason::UPDATE_CERTIFICATE),
        ),
        "05-delete-no-cert" => (
            Delete,
            &["Authenticate", "Deleted(INVALID_ELEMENT)"][..],
            ended(Reason::UPDATE_CERTIFICATE),
        ),
        "06-none" | "12-lsc-ec-auth-sudi-none" => (
            NoPendingOperation,
            &["Authenticate"][..],
            ended(Reason::NO_ACTION),
        ),
        "07-unknown-device" => (
            UnknownDevice,
            &["Authenticate"][..],
            ended(Reason::UNKNOWN_DEVICE),
        ),
        "09-wrong-password" | "10-missing-password" | "13-cert-auth-missing" => (
            AuthenticationFailed,
            &["Authenticate"][..],
            ended(Reason::INVALID_ELEMENT),
        ),
        "14-ec-install-stock-capfc" => (
            Install(KeyRequest::Ec(Curve::SECP256R1)),
            &["Authenticate", "InProgress(1)"][..],
            // Stock capfc crashes after REQUEST_IN_PROGRESS: the connection just drops.
            Outcome::PeerClosed {
                state: State::WaitKey,
            },
        ),
        "15-ec-p256-install-patched-capfc" => (
            Install(KeyRequest::Ec(Curve::SECP256R1)),
            install,
            ended(Reason::UPDATE_CERTIFICATE),
        ),
        "16-ec-p384-install-patched-capfc" => (
            Install(KeyRequest::Ec(Curve::SECP384R1)),
            install,
            ended(Reason::UPDATE_CERTIFICATE),
        ),
        other => panic!("no expectation for recorded session {other}"),
    };
    Expected {
        decision,
        events,
        outcome,
    }
}

fn short(event: &ServerEvent) -> String {
    match event {
        ServerEvent::Authenticate(_) => "Authenticate".into(),
        ServerEvent::KeyGenerationInProgress { count } => format!("InProgress({count})"),
        ServerEvent::PublicKey { .. } => "PublicKey".into(),
        ServerEvent::KeyGenerationFailed { reason } => format!("KeyGenFailed({reason:?})"),
        ServerEvent::CertificateStored => "Stored".into(),
        ServerEvent::StoreFailed { reason } => format!("StoreFailed({reason})"),
        ServerEvent::Fetched {
            reason,
            certificate,
        } => format!(
            "Fetched({reason}, {})",
            if certificate.is_some() {
                "certificate"
            } else {
                "none"
            }
        ),
        ServerEvent::Deleted { reason } => format!("Deleted({reason})"),
        ServerEvent::Closed { outcome } => format!("Closed({outcome})"),
        other => format!("{other:?}"),
    }
}

/// The first message of `command` in the recording, decoded.
fn find(s: &Recorded, command: Command) -> Option<Message<'static>> {
    s.messages.iter().find_map(|(_, bytes)| {
        let m = Message::decode(bytes).unwrap().into_owned();
        (m.command() == command).then_some(m)
    })
}

#[test]
fn there_are_sixteen_recorded_sessions() {
    let labels: Vec<String> = recorded().into_iter().map(|s| s.label).collect();
    assert_eq!(labels.len(), 16, "{labels:?}");
}

#[test]
fn every_recorded_session_replays_byte_exact_through_the_server() {
    for s in recorded() {
        let label = s.label.as_str();
        let want = expected(label);
        let store_der = find(&s, Command::STORE_CERT_REQUEST).map(|m| match m.payload {
            Payload::StoreCertificateRequest(r) => r.certificate().der().to_vec(),
            _ => unreachable!(),
        });
        let public_key = find(&s, Command::KEY_GEN_RESPONSE).and_then(|m| match m.payload {
            Payload::KeyGenResponse(r) => r.public_key().map(<[u8]>::to_vec),
            _ => unreachable!(),
        });
        let now = Instant::now();
        let mut server = ServerSession::new(ServerConfig::default(), s.session_id, now);
        let mut events = Vec::new();
        for (i, (direction, bytes)) in s.messages.iter().enumerate() {
            match direction {
                Direction::ServerToPhone => {
                    let sent = server.poll_transmit();
                    assert_eq!(
                        sent.as_deref().map(hex::encode),
                        Some(hex::encode(bytes)),
                        "{label} message #{}",
                        i + 1
                    );
                }
                Direction::PhoneToServer => {
                    // Odd chunks: a header split across reads must not matter (spec 1).
                    for chunk in bytes.chunks(7) {
                        server.handle_input(now, chunk);
                    }
                    while let Some(event) = server.poll_event() {
                        match &event {
                            ServerEvent::Authenticate(auth) => {
                                assert_eq!(auth.session_id, s.session_id, "{label}");
                                assert_eq!(auth.version, 3, "{label}");
                                assert!(auth.device_name.starts_with("SEP"), "{label}");
                                server.decide(now, want.decision).unwrap();
                            }
                            ServerEvent::PublicKey { spki_der } => {
                                assert_eq!(Some(spki_der), public_key.as_ref(), "{label}");
                                server
                                    .deliver_certificate(now, store_der.as_ref().unwrap())
                                    .unwrap();
                            }
                            _ => {}
                        }
                        events.push(event);
                    }
                }
            }
        }
        assert_eq!(
            server.poll_transmit(),
            None,
            "{label}: nothing more to send"
        );
        if !server.is_closed() {
            // Session 14: the phone drops the connection.
            server.handle_eof(now);
            events.extend(std::iter::from_fn(|| server.poll_event()));
        }
        let Some(ServerEvent::Closed { outcome }) = events.pop() else {
            panic!("{label}: the last event is not Closed: {events:?}");
        };
        assert_eq!(outcome, want.outcome, "{label}");
        let shown: Vec<String> = events.iter().map(short).collect();
        assert_eq!(shown, want.events, "{label}");
        assert!(server.is_closed() && server.poll_timeout().is_none());
    }
}

#[test]
fn recorded_passwords_and_certificate_proofs_reach_the_application() {
    let proof = |label: &str| {
        let s = recorded().into_iter().find(|s| s.label == label).unwrap();
        let now = Instant::now();
        let mut server = ServerSession::new(ServerConfig::default(), s.session_id, now);
        server.handle_input(now, &s.messages[1].1);
        match server.poll_event() {
            Some(ServerEvent::Authenticate(auth)) => auth,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(proof("08-password-install").password(), Some("123456"));
    assert_eq!(proof("09-wrong-password").password(), Some("999999"));
    let cert = proof("11-lsc-rsa-auth-fetch");
    let content = cert.signed_content().unwrap();
    assert!(content.starts_with(b"SEP001A2B3C4D5E\0\x30\x82"));
    assert_eq!(cert.signed_data().unwrap().len(), 256, "RSA-2048");
    assert_eq!(
        cert.sha2_signed_data().unwrap().hash_algorithm(),
        capf_wire::HashAlgorithm::SHA512
    );
    // SUDI signs the session id little-endian (recorded session 11 has id 14).
    assert_eq!(cert.sudi_signed_content().unwrap()[..4], [14, 0, 0, 0]);
    assert!(proof("13-cert-auth-missing").certificate().is_none());
}

#[test]
fn every_recorded_session_replays_byte_exact_through_the_phone() {
    for s in recorded() {
        let label = s.label.as_str();
        let want = expected(label);
        let auth_response = find(&s, Command::AUTH_RESPONSE).unwrap();
        let public_key = find(&s, Command::KEY_GEN_RESPONSE).and_then(|m| match m.payload {
            Payload::KeyGenResponse(r) => r.public_key().map(<[u8]>::to_vec),
            _ => unreachable!(),
        });
        let store = find(&s, Command::STORE_CERT_REQUEST).map(|m| match m.payload {
            Payload::StoreCertificateRequest(r) => r.certificate().der().to_vec(),
            _ => unreachable!(),
        });
        let stored = find(&s, Command::STORE_CERT_RESPONSE).map(|m| match m.payload {
            Payload::StoreCertificateResponse(r) => r.reason() == Reason::UPDATE_CERTIFICATE,
            _ => unreachable!(),
        });
        let fetched = find(&s, Command::FETCH_CERT_RESPONSE).map(|m| match m.payload {
            Payload::FetchCertificateResponse(r) => r.certificate().map(|c| Certificate {
                certificate_type: c.certificate_type(),
                der: c.der().to_vec(),
            }),
            _ => unreachable!(),
        });
        let deleted = find(&s, Command::DELETE_CERT_RESPONSE).map(|m| match m.payload {
            Payload::DeleteCertificateResponse(r) => r.reason() == Reason::UPDATE_CERTIFICATE,
            _ => unreachable!(),
        });
        let crashes_after_request_in_progress = label.starts_with("14-");

        let now = Instant::now();
        let mut phone = PhoneSession::new(PhoneConfig::default(), now);
        let mut outcome = None;
        for (i, (direction, bytes)) in s.messages.iter().enumerate() {
            match direction {
                Direction::PhoneToServer => {
                    let sent = phone.poll_transmit();
                    assert_eq!(
                        sent.as_deref().map(hex::encode),
                        Some(hex::encode(bytes)),
                        "{label} message #{}",
                        i + 1
                    );
                }
                Direction::ServerToPhone => {
                    for chunk in bytes.chunks(5) {
                        phone.handle_input(now, chunk);
                    }
                    while let Some(event) = phone.poll_event() {
                        match event {
                            PhoneEvent::AuthRequested {
                                session_id,
                                version,
                                ..
                            } => {
                                assert_eq!(session_id, s.session_id, "{label}");
                                assert_eq!(version, 3, "{label}");
                                let Payload::AuthResponse(r) = auth_response.payload.clone() else {
                                    unreachable!()
                                };
                                phone.send_auth_response(now, r).unwrap();
                            }
                            PhoneEvent::KeyGenerationRequested { key } => {
                                assert_eq!(Decision::Install(key), want.decision, "{label}");
                                if !crashes_after_request_in_progress {
                                    phone
                                        .send_public_key(now, public_key.as_ref().unwrap())
                                        .unwrap();
                                }
                            }
                            PhoneEvent::CertificateReceived { certificate } => {
                                assert_eq!(Some(&certificate.der), store.as_ref(), "{label}");
                                phone.store_result(now, stored.unwrap()).unwrap();
                            }
                            PhoneEvent::FetchRequested => {
                                let c = fetched.clone().unwrap();
                                phone.send_certificate(now, c.as_ref()).unwrap();
                            }
                            PhoneEvent::DeleteRequested => {
                                phone.delete_result(now, deleted.unwrap()).unwrap();
                            }
                            PhoneEvent::Closed { outcome: o } => outcome = Some(o),
                            other => panic!("{label}: {other:?}"),
                        }
                    }
                }
            }
        }
        assert_eq!(phone.poll_transmit(), None, "{label}: nothing more to send");
        if crashes_after_request_in_progress {
            assert_eq!(phone.state(), State::GeneratingKey);
            phone.abort().unwrap();
            outcome = phone.poll_event().map(|e| match e {
                PhoneEvent::Closed { outcome } => outcome,
                other => panic!("{other:?}"),
            });
            assert_eq!(
                outcome,
                Some(Outcome::Aborted { end_session: None }),
                "{label}"
            );
        } else {
            assert_eq!(outcome, Some(want.outcome), "{label}");
            // capfd closes without close_notify right after END_SESSION: normal (spec T10).
            phone.handle_eof(now);
            assert_eq!(phone.poll_event(), None);
        }
    }
}
