//! Decoding a valid message borrows the input and allocates nothing (the zero-copy promise).

use capf_wire::{Deframer, Message, Strictness};

fn vector(name: &str) -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../spec/capf-test-vectors.json"
    );
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = all
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

#[test]
fn decoding_valid_messages_allocates_nothing() {
    for name in [
        "AUTH_RESPONSE with password",
        "AUTH_RESPONSE with RSA LSC + SIGNED_DATA + SHA2_SIGNED_DATA + SUDI_DATA",
        "KEY_GEN_RESPONSE with RSA 2048 public key",
        "STORE_CERT_REQUEST with LSC (RSA 2048, DER)",
        "RETRY_LATER with RETRY_DELAY 3600",
        "SIGN_CERT_REQUEST with CSR_INFO (RSA 2048 key)",
        "SIGN_CERT_RESPONSE with CSR_SIGNATURE (EC P-256)",
    ] {
        let bytes = vector(name);
        let mut ok = false;
        let counts = allocation_counter::measure(|| {
            ok = Message::decode(&bytes).is_ok();
        });
        assert!(ok, "{name}");
        assert_eq!(counts.count_total, 0, "{name} allocated");
    }
}

#[test]
fn deframing_whole_messages_allocates_nothing() {
    let bytes = vector("STORE_CERT_REQUEST with LSC (RSA 2048, DER)");
    let stream = [bytes.as_slice(), bytes.as_slice()].concat();
    let mut frames = 0;
    let counts = allocation_counter::measure(|| {
        let mut deframer = Deframer::new(Strictness::Strict);
        let mut input = stream.as_slice();
        while !input.is_empty() {
            let (used, frame) = deframer.push(input).unwrap();
            input = &input[used..];
            frames += usize::from(frame.is_some());
        }
    });
    assert_eq!(frames, 2);
    assert_eq!(counts.count_total, 0);
}
