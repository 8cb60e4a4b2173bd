//! capf-lsc's signer backends (issue 19), in one run: RustCrypto, ring and (with the feature
//! `aws-lc-rs`) aws-lc-rs, each signing the same LSC TBSCertificate with the same RSA-2048,
//! RSA-3072 and P-256 CAPF keys.
//!
//! `cargo bench --bench signers --features aws-lc-rs -- --warm-up-time 1 --measurement-time 3`

// A bench over committed fixtures: a missing fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use capf_lsc::{
    CaCertificateParams, Issuer, IssuerKey, LscParams, LscSigner, PhonePublicKey, SignerBackend,
    ValidityDays,
};
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

const ISSUERS: [(&str, &str); 3] = [
    ("RSA-2048", fixture!("rsa-2048.pem")),
    ("RSA-3072", fixture!("rsa-3072.pem")),
    ("P-256", fixture!("p256.pem")),
];

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn signers(c: &mut Criterion) {
    let phone = PhonePublicKey::from_pem(fixture!("phone-rsa-2048.pub.pem")).expect("phone key");
    let params = LscParams {
        device_name: "SEP001122334455".into(),
        validity: ValidityDays::MAX,
    };
    for (label, pem) in ISSUERS {
        // One TBSCertificate per key type, the same for every backend.
        let key = IssuerKey::from_pkcs8_pem(pem).expect("fixture key");
        let cert = CaCertificateParams::capf(0xcafe)
            .self_signed(&key, now(), &mut || [1u8; 16])
            .expect("CAPF certificate");
        let issuer = Issuer::new(cert, Box::new(key)).expect("issuer");
        let tbs = issuer
            .lsc_tbs_der(&phone, &params, now(), &mut || [2u8; 16])
            .expect("TBS");
        let mut group = c.benchmark_group(format!("signers/{label}"));
        for backend in SignerBackend::ALL.into_iter().filter(|b| b.is_available()) {
            let key = IssuerKey::from_pkcs8_pem(pem)
                .and_then(|k| k.with_backend(backend))
                .expect("backend");
            group.bench_function(backend.as_str(), |b| {
                b.iter(|| key.sign(black_box(&tbs)).expect("sign"))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, signers);
criterion_main!(benches);
