//! capf-lsc: LSC issuance per issuer key type against the bare signature of the same key,
//! measured in the same run, and the TBSCertificate build alone.
//!
//! `cargo bench --bench lsc -- --measurement-time 3 --warm-up-time 1`

// A bench over committed fixtures: a missing fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use capf_lsc::{CaCertificateParams, Issuer, IssuerKey, LscParams, PhonePublicKey, ValidityDays};
use criterion::{Criterion, criterion_group, criterion_main};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/capf-test-support/fixtures/",
            $name
        ))
    };
}

const ISSUERS: [(&str, &str); 4] = [
    ("RSA-2048", fixture!("rsa-2048.pem")),
    ("RSA-3072", fixture!("rsa-3072.pem")),
    ("P-256", fixture!("p256.pem")),
    ("P-384", fixture!("p384.pem")),
];

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn issuer(pem: &str) -> Issuer {
    let key = IssuerKey::from_pkcs8_pem(pem).expect("fixture key");
    let mut params = CaCertificateParams::capf(0xcafe);
    params.organization = "Example Health".into();
    params.organizational_unit = "Voice".into();
    params.locality = "Wellington".into();
    params.state = "Wellington".into();
    params.country = "NZ".into();
    let cert = params
        .self_signed(&key, now(), &mut || [1u8; 16])
        .expect("CAPF certificate");
    Issuer::new(cert, Box::new(key)).expect("issuer")
}

fn lsc(c: &mut Criterion) {
    // The typical phone: an RSA-2048 key.
    let phone = PhonePublicKey::from_pem(fixture!("phone-rsa-2048.pub.pem")).expect("phone key");
    let params = LscParams {
        device_name: "SEP001122334455".into(),
        validity: ValidityDays::MAX,
    };
    let mut serial = 0u128;
    let mut serials = move || {
        serial += 1;
        serial.to_be_bytes()
    };
    for (label, pem) in ISSUERS {
        let issuer = issuer(pem);
        let tbs = issuer
            .lsc_tbs_der(&phone, &params, now(), &mut serials)
            .expect("TBS");
        let mut group = c.benchmark_group(format!("lsc/{label}"));
        group.bench_function("bare signature", |b| {
            b.iter(|| issuer.signer().sign(black_box(&tbs)).expect("sign"))
        });
        group.bench_function("issue_lsc", |b| {
            b.iter(|| {
                issuer
                    .issue_lsc(black_box(&phone), &params, now(), &mut serials)
                    .expect("issue")
            })
        });
        group.bench_function("TBS build + DER", |b| {
            b.iter(|| {
                issuer
                    .lsc_tbs_der(black_box(&phone), &params, now(), &mut serials)
                    .expect("TBS")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, lsc);
criterion_main!(benches);
