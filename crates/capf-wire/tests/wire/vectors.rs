//! Every vector of `spec/capf-test-vectors.json` against the codec.

use std::borrow::Cow;

use capf_wire::{
    Deframer, Error, ErrorPolicy, Frame, Message, Payload, RawElement, ServerAction, Strictness,
    Tag, Value,
};
use serde_json::Value as Json;

fn vectors() -> Vec<Json> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../spec/capf-test-vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Json>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn bytes(v: &Json) -> Vec<u8> {
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

/// Whether the vector belongs to the project's endpoint-CSR extension (spec section 16).
fn is_extension(v: &Json) -> bool {
    v["extension"] == "endpoint-csr"
}

fn is_codec_error(v: &Json) -> bool {
    matches!(v["error_layer"].as_str(), Some("frame" | "tlv" | "value"))
}

/// Checks one decoded element against the vector's `decoded` rendering.
fn check_element(name: &str, el: &RawElement<'_>, want: &Json) {
    assert_eq!(u64::from(el.tag.0), want["tag"].as_u64().unwrap(), "{name}");
    assert_eq!(
        el.value.len() as u64,
        want["length"].as_u64().unwrap(),
        "{name}"
    );
    if let Some(wanted_name) = want["name"].as_str() {
        assert_eq!(el.tag.name(), Some(wanted_name), "{name}: tag name");
    }
    let value = Value::decode(el, Strictness::Strict).unwrap();
    match value {
        Value::Reason(r) => assert_eq!(u64::from(r.0), want["value"].as_u64().unwrap()),
        Value::CertificateType(v) => assert_eq!(u64::from(v.0), want["value"].as_u64().unwrap()),
        Value::AuthType(v) => assert_eq!(u64::from(v.0), want["value"].as_u64().unwrap()),
        Value::KeyType(v) => assert_eq!(u64::from(v.0), want["value"].as_u64().unwrap()),
        Value::Curve(v) => assert_eq!(u64::from(v.0), want["value"].as_u64().unwrap()),
        Value::Version(v) => assert_eq!(u64::from(v), want["value"].as_u64().unwrap()),
        Value::KeySize(v) => assert_eq!(u64::from(v), want["value"].as_u64().unwrap()),
        Value::Text(s) => assert_eq!(s, want["value"].as_str().unwrap(), "{name}"),
        Value::Certificate(c) => {
            assert_eq!(
                u64::from(c.marker()),
                want["inner_marker"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(c.inner_length()),
                want["inner_length"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(c.reserved()),
                want["inner_reserved"].as_u64().unwrap()
            );
            assert_eq!(
                u64::from(c.certificate_type().0),
                want["certificate_type"].as_u64().unwrap()
            );
            assert_eq!(
                hex::encode(c.der()),
                want["der_hex"].as_str().unwrap(),
                "{name}"
            );
        }
        Value::Sha2SignedData(s) => {
            assert_eq!(
                u64::from(s.hash_algorithm().0),
                want["hash_algorithm"].as_u64().unwrap()
            );
            assert_eq!(
                s.signature().len() as u64,
                want["signature_length"].as_u64().unwrap()
            );
            assert_eq!(
                hex::encode(s.signature()),
                want["signature_hex"].as_str().unwrap()
            );
        }
        Value::SudiData(s) => {
            let cert = &want["certificate"];
            assert_eq!(
                u64::from(s.certificate().lead),
                cert["lead_byte"].as_u64().unwrap()
            );
            assert_eq!(
                hex::encode(s.certificate().data),
                cert["der_hex"].as_str().unwrap()
            );
            for (block, key) in [
                (s.signed_data(), "signed_data"),
                (s.sha2_signed_data(), "sha2_signed_data"),
            ] {
                let w = &want[key];
                assert_eq!(
                    u64::from(block.lead),
                    w["hash_algorithm"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(
                    hex::encode(block.data),
                    w["signature_hex"].as_str().unwrap()
                );
            }
        }
        Value::RetryDelay(d) => {
            assert_eq!(u64::from(d.seconds()), want["value"].as_u64().unwrap())
        }
        Value::CsrInfo(c) => assert_eq!(
            hex::encode(c.as_bytes()),
            want["der_hex"].as_str().unwrap(),
            "{name}"
        ),
        Value::CsrSignature(s) => assert_eq!(
            hex::encode(s.as_bytes()),
            want["signature_hex"].as_str().unwrap(),
            "{name}"
        ),
        Value::Opaque(b) => {
            let hex = want["hex"].as_str().or(want["value_hex"].as_str()).unwrap();
            assert_eq!(hex::encode(&b), hex, "{name}");
        }
        other => panic!("{name}: unexpected value {other:?}"),
    }
}

#[test]
fn valid_vectors_decode_to_their_fields_and_reencode_byte_exact() {
    let (mut checked, mut extension) = (0, 0);
    for v in vectors().iter().filter(|v| v["error_layer"].is_null()) {
        let name = v["name"].as_str().unwrap();
        let data = bytes(v);
        let frame =
            Frame::parse(&data, Strictness::Strict).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &v["decoded"]["header"];
        assert_eq!(
            u64::from(frame.header.command.0),
            h["command"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            frame.header.command.name(),
            h["command_name"].as_str(),
            "{name}"
        );
        assert_eq!(
            u64::from(frame.header.session_id),
            h["session_id"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(frame.header.length),
            h["length"].as_u64().unwrap()
        );
        let elements: Vec<_> = frame.elements().collect::<Result<_, _>>().unwrap();
        let want = v["decoded"]["elements"].as_array().unwrap();
        assert_eq!(elements.len(), want.len(), "{name}");
        for (el, w) in elements.iter().zip(want) {
            check_element(name, el, w);
        }
        let message = Message::decode(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !matches!(message.payload, Payload::Raw(_)),
            "{name} has a typed form"
        );
        assert_eq!(message.to_bytes(), data, "{name}: re-encoding");
        // Detached from the input, the message is still the same and encodes the same.
        let owned = message.clone().into_owned();
        assert_eq!(owned, message);
        assert_eq!(owned.to_bytes(), data);
        if is_extension(v) {
            extension += 1;
        } else {
            checked += 1;
        }
    }
    assert_eq!(checked, 107);
    assert_eq!(extension, 8, "spec 16 vectors");
}

#[test]
fn codec_layer_malformed_vectors_fail_with_the_expected_error() {
    let (mut checked, mut extension) = (0, 0);
    for v in vectors().iter().filter(|v| is_codec_error(v)) {
        let name = v["name"].as_str().unwrap();
        let data = bytes(v);
        let err = Message::decode(&data).expect_err(name);
        let layer = v["error_layer"].as_str().unwrap();
        let expected = v["expect_error"].as_str().unwrap();
        assert_eq!(err.layer().as_str(), layer, "{name}: {err}");
        assert!(
            err.to_string().starts_with(expected),
            "{name}: got `{err}`, expected `{expected}`"
        );
        // The streaming path reports the same error, at once or at end of stream.
        let mut deframer = Deframer::new(Strictness::Strict);
        let streamed = match deframer.push(&data) {
            Err(e) => e,
            Ok((_, Some(frame))) => Message::from_frame(&frame).expect_err(name),
            Ok((_, None)) => deframer.finish().expect_err(name),
        };
        assert_eq!(streamed, err, "{name}");
        if is_extension(v) {
            extension += 1;
        } else {
            checked += 1;
        }
    }
    assert_eq!(checked, 14);
    assert_eq!(extension, 5, "spec 16 vectors");
}

#[test]
fn session_and_semantic_vectors_pass_the_codec() {
    // Their errors belong to capf-session: the codec must accept them.
    let above: Vec<_> = vectors()
        .into_iter()
        .filter(|v| matches!(v["error_layer"].as_str(), Some("session" | "semantic")))
        .collect();
    assert_eq!(above.iter().filter(|v| !is_extension(v)).count(), 2);
    assert_eq!(above.iter().filter(|v| is_extension(v)).count(), 2);
    for v in &above {
        let data = bytes(v);
        let m = Message::decode(&data).unwrap();
        assert_eq!(m.to_bytes(), data);
    }
}

#[test]
fn server_actions_follow_spec_9_3_for_every_malformed_vector() {
    for v in vectors().iter().filter(|v| is_codec_error(v)) {
        let name = v["name"].as_str().unwrap();
        let err = Message::decode(&bytes(v)).unwrap_err();
        let action = err.server_action(ErrorPolicy::default());
        let broken = name.contains("truncated header")
            || name.contains("length field longer")
            || name.contains("oversized");
        let expected = if broken {
            ServerAction::Close
        } else {
            ServerAction::EndSession(capf_wire::Reason::INVALID_ELEMENT)
        };
        assert_eq!(action, expected, "{name}");
    }
    let bad_id = Error::BadProtocolId { found: 0x56 };
    let off = ErrorPolicy {
        end_session_on_bad_protocol_id: false,
    };
    assert_eq!(bad_id.server_action(off), ServerAction::Close);
}

#[test]
fn recorded_sessions_decode_whole_as_one_stream_per_direction() {
    let all = vectors();
    let mut sessions: Vec<&str> = all.iter().filter_map(|v| v["session"].as_str()).collect();
    sessions.dedup();
    assert_eq!(sessions.len(), 16);
    for session in sessions {
        for direction in ["server->phone", "phone->server"] {
            let msgs: Vec<&Json> = all
                .iter()
                .filter(|v| v["session"].as_str() == Some(session) && v["direction"] == direction)
                .collect();
            let stream: Vec<u8> = msgs.iter().flat_map(|v| bytes(v)).collect();
            // Chunked awkwardly: 7 bytes at a time splits every header.
            let mut deframer = Deframer::new(Strictness::Strict);
            let mut decoded = Vec::new();
            for chunk in stream.chunks(7) {
                let mut input = chunk;
                while !input.is_empty() {
                    let (used, frame) = deframer.push(input).unwrap();
                    input = &input[used..];
                    if let Some(frame) = frame {
                        decoded.push(Message::from_frame(&frame).unwrap().into_owned());
                    }
                }
            }
            deframer.finish().unwrap();
            assert_eq!(decoded.len(), msgs.len(), "{session} {direction}");
            for (m, v) in decoded.iter().zip(&msgs) {
                assert_eq!(m.to_bytes(), bytes(v), "{}", v["name"]);
                assert!(m.session_id != 0);
            }
        }
    }
}

#[test]
fn lenient_mode_keeps_unknown_commands_and_tags_unchanged() {
    let all = vectors();
    for name in [
        "malformed: unknown command code 24",
        "malformed: unknown element tag 14",
    ] {
        let v = all.iter().find(|v| v["name"] == name).unwrap();
        let data = bytes(v);
        assert!(Message::decode(&data).is_err());
        let m = Message::decode_with(&data, Strictness::Lenient).unwrap();
        assert_eq!(m.to_bytes(), data, "{name}");
    }
    let v = all
        .iter()
        .find(|v| v["name"] == "malformed: CERTIFICATE inner length off by one")
        .unwrap();
    let data = bytes(v);
    let m = Message::decode_with(&data, Strictness::Lenient).unwrap();
    let Payload::StoreCertificateRequest(store) = &m.payload else {
        panic!()
    };
    assert!(!store.certificate().is_well_formed());
    assert_eq!(m.to_bytes(), data);
}

#[test]
fn element_order_of_the_jabber_capture_is_kept() {
    let data = hex::decode("5502000123450013070001020d00084353464a444f450001000101").unwrap();
    let m = Message::decode(&data).unwrap();
    let Payload::AuthResponse(a) = &m.payload else {
        panic!()
    };
    assert_eq!(
        a.element_order(),
        [Tag::VERSION, Tag::DEVICE_NAME, Tag::REASON]
    );
    assert_eq!(a.version(), Some(2));
    assert_eq!(m.to_bytes(), data);
    // The same content built anew follows capfc's order instead.
    let built = capf_wire::AuthResponse::new("CSFJDOE", 2).unwrap();
    assert_eq!(
        built.element_order(),
        [Tag::REASON, Tag::VERSION, Tag::DEVICE_NAME]
    );
    assert!(matches!(a.device_name(), "CSFJDOE"));
    let _ = Cow::Borrowed("");
}
