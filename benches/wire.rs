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

/// Feeds `stream` to a deframer in reads of `chunk` bytes; the number of messages.
fn deframe(stream: &[u8], chunk: usize) -> usize {
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
    deframer.finish().expect("ends on a message boundary");
    frames
}

fn deframer(c: &mut Criterion) {
    // Exactly 1 MiB of whole messages: those of every recorded session (79 messages, 16
    // sessions) in session order, round and round; then, to end on a message boundary at
    // 1 MiB, the first that still fit and a few of the sessions' own REQUEST_IN_PROGRESS
    // (8 bytes) and KEY_GEN_REQUEST (17 bytes).
    const MIB: usize = 1 << 20;
    // Any gap of at least (8 - 1) * (17 - 1) = 112 bytes is 8a + 17b.
    const TOP_UP: usize = 8 * 17;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/capf-test-vectors.json");
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("JSON");
    let messages: Vec<Vec<u8>> = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|v| v["session"].is_string())
        .map(|v| hex::decode(v["hex"].as_str().expect("hex")).expect("hex"))
        .collect();
    let of_len = |len: usize| {
        messages
            .iter()
            .find(|m| m.len() == len)
            .unwrap_or_else(|| panic!("no recorded message of {len} bytes"))
            .clone()
    };
    let (short, odd) = (of_len(8), of_len(17));
    let mut stream = Vec::with_capacity(MIB);
    let mut skipped = 0;
    for m in messages.iter().cycle() {
        if stream.len() + m.len() + TOP_UP <= MIB {
            stream.extend_from_slice(m);
            skipped = 0;
        } else {
            skipped += 1;
            if skipped == messages.len() {
                break;
            }
        }
    }
    // 17 = 1 (mod 8): gap % 8 KEY_GEN_REQUESTs leave a multiple of 8.
    let gap = MIB - stream.len();
    for _ in 0..gap % 8 {
        stream.extend_from_slice(&odd);
    }
    while stream.len() < MIB {
        stream.extend_from_slice(&short);
    }
    assert_eq!(stream.len(), MIB);
    let frames = deframe(&stream, MIB);
    assert_eq!(deframe(&stream, 16 * 1024), frames);
    println!("deframer stream: {} bytes, {frames} messages", stream.len());
    let mut g = c.benchmark_group("deframer_1MiB_mixed");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    // As TLS delivers it: 16 KiB records, so some messages straddle two reads.
    for (label, chunk) in [("16KiB_reads", 16 * 1024), ("whole", MIB)] {
        g.bench_function(label, |b| b.iter(|| deframe(black_box(&stream), chunk)));
    }
    g.finish();
}

criterion_group!(benches, codec, deframer);
criterion_main!(benches);
