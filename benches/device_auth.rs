//! Authentication by existing certificate: one AUTH_RESPONSE's proof (chain to CAPF-trust and
//! the two signatures, SHA-1 and SHA-512), for the spec's RSA-2048 and P-256 LSC vectors, and
//! the RSA one with its SUDI data too.
//!
//! `cargo bench --bench device_auth`

// A bench over the committed vectors: a missing vector should stop it loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use capf_trust::{
    Cert, DeviceProof, Precedence, Purpose, Release, TrustStore, authenticate_device,
};
use capf_wire::{Message, Payload};
use criterion::{Criterion, criterion_group, criterion_main};

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/capf-test-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("JSON")
}

fn find<'a>(all: &'a serde_json::Value, prefix: &str) -> &'a serde_json::Value {
    all.as_array()
        .expect("array")
        .iter()
        .find(|v| v["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .expect("vector")
}

fn bench(c: &mut Criterion) {
    let all = vectors();
    let rsa = find(&all, "AUTH_RESPONSE with RSA LSC");
    let fixture = &rsa["decoded"]["test_fixture"];
    let pem = |key: &str| {
        Cert::from_pem(fixture[key].as_str().expect("PEM").as_bytes()).expect("certificate")
    };
    let mut store = TrustStore::new(Release::default());
    store.insert_unchecked(&Purpose::CAPF_TRUST, pem("capf_ca_certificate_pem"));
    store.insert_unchecked(&Purpose::CAPF_TRUST_SUDI, pem("sudi_ca_certificate_pem"));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut group = c.benchmark_group("device_auth");
    for (label, prefix, with_sudi) in [
        ("RSA-2048 LSC", "AUTH_RESPONSE with RSA LSC", false),
        ("RSA-2048 LSC + SUDI", "AUTH_RESPONSE with RSA LSC", true),
        ("P-256 LSC", "AUTH_RESPONSE with EC (P-256) LSC", false),
    ] {
        let bytes = hex::decode(find(&all, prefix)["hex"].as_str().expect("hex")).expect("hex");
        let message = Message::decode(&bytes).expect("vector decodes");
        let Payload::AuthResponse(a) = &message.payload else {
            panic!("not AUTH_RESPONSE")
        };
        let mut proof = DeviceProof::from_auth_response(message.session_id, a);
        if !with_sudi {
            proof.sudi = None;
        }
        authenticate_device(&store, &proof, Precedence::LscFirst, now).expect("vector verifies");
        group.bench_function(label, |b| {
            b.iter(|| authenticate_device(&store, black_box(&proof), Precedence::LscFirst, now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
