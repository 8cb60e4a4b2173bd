//! capf-wire: decode and encode of the messages that carry the most bytes, and the deframer.
//!
//! `cargo bench --bench wire`

// A bench over the committed vectors: a missing vector should stop it loudly.
#![allow(clippy::expect_used, clippy::panic)]
use std::hint::black_box;

use capf_wire::{Deframer, Message, Strictness};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn vector(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/capf-test-vectors.json");
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).expect("JSON");
    let v = all
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name}"));
    hex::decode(v["hex"].as_str().expect("hex")).expect("hex")
}

const MESSAGES: [(&str, &str); 4] = [
    ("auth_response_password", "AUTH_RESPONSE with password"),
    (
        "auth_response_certificate",
        "AUTH_RESPONSE with RSA LSC + SIGNED_DATA + SHA2_SIGNED_DATA + SUDI_DATA",
    ),
    (
        "key_gen_response_rsa2048",
        "KEY_GEN_RESPONSE with RSA 2048 public key",
    ),
    (
        "store_cert_request_1k",
        "STORE_CERT_REQUEST with LSC (RSA 2048, DER)",
    ),
];

fn codec(c: &mut Criterion) {
    for (label, name) in MESSAGES {
        let bytes = vector(name);
        let mut g = c.benchmark_group(label);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("decode", |b| {
            b.iter(|| Message::decode(black_box(&bytes)).expect("valid"))
        });
        let message = Message::decode(&bytes).expect("valid").into_owned();
        let mut out = Vec::with_capacity(bytes.len());
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                black_box(&message).encode(&mut out);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

fn deframer(c: &mut Criterion) {
    // 1 MiB of the messages of every recorded session, back to back.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/capf-test-vectors.json");
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("JSON");
    let mixed: Vec<u8> = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|v| v["session"].is_string())
        .flat_map(|v| hex::decode(v["hex"].as_str().expect("hex")).expect("hex"))
        .collect();
    let mut stream = Vec::with_capacity(1 << 20);
    while stream.len() + mixed.len() <= 1 << 20 {
        stream.extend_from_slice(&mixed);
    }
    let mut g = c.benchmark_group("deframer_1MiB_mixed");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    // As TLS delivers it: 16 KiB records, so some messages straddle two reads.
    for (label, chunk) in [("16KiB_reads", 16 * 1024), ("whole", stream.len())] {
        g.bench_function(label, |b| {
            b.iter(|| {
                let mut deframer = Deframer::new(Strictness::Strict);
                let mut frames = 0usize;
                for read in stream.chunks(chunk) {
                    let mut input = read;
                    while !input.is_empty() {
                        let (used, frame) = deframer.push(input).expect("valid stream");
                        input = &input[used..];
                        frames += usize::from(frame.is_some());
                    }
                }
                black_box(frames)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codec, deframer);
criterion_main!(benches);
