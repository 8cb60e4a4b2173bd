//! The shared file's malformed and invalid phone -> server vectors, sent in the AUTH_RESPONSE
//! position: END_SESSION 7 (byte-exact) while the framing is intact, a silent close when it is
//! broken (spec 9.3).

use std::time::Instant;

use capf_session::{Decision, Error, Outcome, ServerConfig, ServerEvent, ServerSession};
use capf_wire::{ErrorPolicy, HashAlgorithm, Reason};

use crate::harness::end_session;
use crate::vectors::{all, bytes, named};

const ID: u32 = 0x0001_2345;

/// Feeds `input` then EOF to a fresh server waiting for AUTH_RESPONSE; returns what it sent after
/// AUTH_REQUEST and how it ended.
fn run(config: ServerConfig, id: u32, input: &[u8]) -> (Vec<Vec<u8>>, Outcome) {
    let now = Instant::now();
    let mut s = ServerSession::new(config, id, now);
    s.poll_transmit().unwrap();
    s.handle_input(now, input);
    s.handle_eof(now);
    let sent = std::iter::from_fn(|| s.poll_transmit()).collect();
    let events: Vec<ServerEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    let closed = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Closed { .. }))
        .count();
    assert_eq!(closed, 1, "exactly one Closed event: {events:?}");
    match events.last() {
        Some(ServerEvent::Closed { outcome }) => (sent, outcome.clone()),
        other => panic!("{other:?}"),
    }
}

/// Vectors whose framing is broken: nothing can be answered (spec 9.3).
const BROKEN_FRAMING: &[&str] = &[
    "malformed: length field longer than body (then EOF)",
    "malformed: truncated header (5 bytes then EOF)",
    "malformed: oversized message (16385 bytes total)",
];

#[test]
fn malformed_vectors_get_end_session_7_or_a_silent_close() {
    let (mut seen, mut extension) = (0, 0);
    for v in all() {
        let layer = v["error_layer"].as_str();
        let name = v["name"].as_str().unwrap();
        if v["direction"] != "phone->server" || !matches!(layer, Some("frame" | "tlv" | "value")) {
            continue;
        }
        if v["extension"] == "endpoint-csr" {
            extension += 1;
        } else {
            seen += 1;
        }
        let (sent, outcome) = run(ServerConfig::default(), ID, &bytes(v));
        if BROKEN_FRAMING.contains(&name) {
            assert!(sent.is_empty(), "{name}: no message when framing is broken");
            assert_eq!(outcome.end_session(), None, "{name}");
        } else {
            assert_eq!(sent, [end_session(ID, 7)], "{name}");
            assert_eq!(
                outcome.end_session(),
                Some(Reason::INVALID_ELEMENT),
                "{name}"
            );
        }
        let Outcome::ProtocolError {
            error: Error::Decode(e),
            ..
        } = &outcome
        else {
            panic!("{name}: {outcome:?}")
        };
        assert_eq!(Some(e.layer().as_str()), layer, "{name}: {e}");
    }
    assert_eq!(seen, 12, "phone -> server frame/tlv/value vectors");
    assert_eq!(
        extension, 1,
        "spec 16 phone -> server frame/tlv/value vectors"
    );
}

#[test]
fn malformed_vectors_fed_byte_by_byte_end_the_same_way() {
    for name in [
        "malformed: unknown element tag 14",
        "malformed: truncated header (5 bytes then EOF)",
    ] {
        let input = named(name);
        let now = Instant::now();
        let mut s = ServerSession::new(ServerConfig::default(), ID, now);
        s.poll_transmit();
        for b in &input {
            s.handle_input(now, std::slice::from_ref(b));
        }
        s.handle_eof(now);
        let (whole, _) = run(ServerConfig::default(), ID, &input);
        assert_eq!(
            std::iter::from_fn(|| s.poll_transmit()).collect::<Vec<_>>(),
            whole,
            "{name}"
        );
    }
}

#[test]
fn the_first_32_bytes_of_a_bad_message_are_kept_for_the_log() {
    for name in [
        "malformed: oversized message (16385 bytes total)",
        "malformed: length field longer than body (then EOF)",
        "malformed: unknown element tag 14",
    ] {
        let input = named(name);
        for chunk_len in [input.len(), 3] {
            let now = Instant::now();
            let mut s = ServerSession::new(ServerConfig::default(), ID, now);
            for chunk in input.chunks(chunk_len) {
                s.handle_input(now, chunk);
            }
            s.handle_eof(now);
            assert!(s.is_closed(), "{name}");
            let head = s.message_head();
            if chunk_len == input.len() {
                assert_eq!(head, &input[..32], "{name}");
            } else {
                // The session stops reading at the bad header: at least the header is kept.
                assert!(
                    head.len() >= 8 && input.starts_with(head),
                    "{name}: {head:?}"
                );
            }
        }
    }
}

#[test]
fn bad_protocol_id_is_answered_only_under_the_compatibility_flag() {
    let input = named("malformed: bad protocol id 0x56");
    let (sent, _) = run(ServerConfig::default(), ID, &input);
    assert_eq!(sent, [end_session(ID, 7)]);
    let quiet = ServerConfig {
        error_policy: ErrorPolicy {
            end_session_on_bad_protocol_id: false,
        },
        ..ServerConfig::default()
    };
    let (sent, outcome) = run(quiet, ID, &input);
    assert!(sent.is_empty());
    assert_eq!(outcome.end_session(), None);
}

#[test]
fn session_layer_vectors_get_end_session_7() {
    let mut seen = 0;
    for v in all().iter().filter(|v| v["error_layer"] == "session") {
        seen += 1;
        let expected =
            u32::try_from(v["context"]["expected_session_id"].as_u64().unwrap()).unwrap();
        let input = bytes(v);
        let found = u32::from_be_bytes([input[2], input[3], input[4], input[5]]);
        let (sent, outcome) = run(ServerConfig::default(), expected, &input);
        // The answer carries the server's own id, not the phone's.
        assert_eq!(sent, [end_session(expected, 7)], "{}", v["name"]);
        assert_eq!(
            outcome,
            Outcome::ProtocolError {
                error: Error::SessionIdMismatch { expected, found },
                end_session: Some(Reason::INVALID_ELEMENT)
            }
        );
    }
    assert!(seen >= 1);
}

#[test]
fn semantic_vectors_reach_the_application_which_refuses_them() {
    // The SHA2_SIGNED_DATA hash-id check is the application's (the session holds no keys): it
    // sees the hash id and answers AuthenticationFailed.
    // The spec 16 semantic vectors answer SIGN_CERT_REQUEST: tests/capf_session/csr.rs.
    for v in all()
        .iter()
        .filter(|v| v["error_layer"] == "semantic" && v["extension"].is_null())
    {
        let input = bytes(v);
        let id = u32::from_be_bytes([input[2], input[3], input[4], input[5]]);
        let now = Instant::now();
        let mut s = ServerSession::new(ServerConfig::default(), id, now);
        s.poll_transmit();
        s.handle_input(now, &input);
        let Some(ServerEvent::Authenticate(auth)) = s.poll_event() else {
            panic!("{}", v["name"])
        };
        assert_eq!(
            auth.sha2_signed_data().unwrap().hash_algorithm(),
            HashAlgorithm::SHA1
        );
        s.decide(now, Decision::AuthenticationFailed).unwrap();
        assert_eq!(s.poll_transmit(), Some(end_session(id, 7)));
    }
}
