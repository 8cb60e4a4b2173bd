//! capf-trust: chain verification of an LSC and of a three-certificate RSA/ECDSA chain, and the
//! upload rules over a PEM chain.
//!
//! `cargo bench --bench trust`

// A bench over committed fixtures: a missing fixture should stop it loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use capf_trust::{Cert, ChainVerdict, Purpose, Release, TrustStore};
use criterion::{Criterion, criterion_group, criterion_main};

fn pem(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/crates/capf-trust/tests/fixtures/{name}.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cert(name: &str) -> Cert {
    Cert::from_pem(&pem(name)).expect("fixture parses")
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn verify(c: &mut Criterion) {
    let mut store = TrustStore::new(Release::LATEST);
    store.insert_unchecked(&Purpose::CAPF_TRUST, cert("capf-a"));
    store.insert_unchecked(&Purpose::CAPF_TRUST, cert("root"));
    // (label, leaf, intermediates, whether the chain is trusted): the verdict is checked before
    // it is timed, so a fixture that stopped verifying cannot pass for a fast verification.
    let cases = [
        (
            "verify LSC under CAPF (ECDSA P-256)",
            cert("lsc-a"),
            vec![],
            true,
        ),
        (
            "verify LSC of a foreign CAPF (rejected)",
            cert("lsc-b"),
            vec![],
            false,
        ),
        (
            "verify HTTPS <- P-256 intermediate <- RSA-2048 root",
            cert("https-inter"),
            vec![cert("inter")],
            true,
        ),
        (
            "verify leaf <- RSA-2048 root (SHA-1)",
            cert("leaf-sha1"),
            vec![],
            true,
        ),
    ];
    for (label, leaf, inter, trusted) in &cases {
        let verdict = store.verify(&Purpose::CAPF_TRUST, leaf, inter, now());
        assert_eq!(
            matches!(verdict, ChainVerdict::Trusted(_)),
            *trusted,
            "{label}: {verdict:?}"
        );
        c.bench_function(label, |b| {
            b.iter(|| {
                let v = store.verify(&Purpose::CAPF_TRUST, black_box(leaf), inter, now());
                black_box(matches!(v, ChainVerdict::Trusted(_)))
            })
        });
    }
}

fn upload(c: &mut Criterion) {
    let mut chain = pem("root");
    chain.extend(pem("inter"));
    c.bench_function(
        "upload PEM chain (root + intermediate) with the 14SU3 rules",
        |b| {
            b.iter(|| {
                let mut store = TrustStore::new(Release::R14SU3);
                let report = store
                    .upload_pem(&Purpose::CAPF_TRUST, black_box(&chain), now())
                    .expect("parses");
                black_box(report.accepted())
            })
        },
    );
}

criterion_group!(benches, verify, upload);
criterion_main!(benches);
